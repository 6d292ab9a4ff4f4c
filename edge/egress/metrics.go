package egress

import "github.com/prometheus/client_golang/prometheus"

var (
	descJobs = prometheus.NewDesc("meridian_egress_jobs", "Egress jobs this edge knows, by kind and state (ended jobs count until the control plane deletes them).",
		[]string{"kind", "state"}, nil)
	descFFmpegCPU = prometheus.NewDesc("meridian_egress_ffmpeg_cpu_seconds_total", "CPU time of finished ffmpeg processes, by role (encoder, video decoder, mux, ...).",
		[]string{"role"}, nil)
	descDropped = prometheus.NewDesc("meridian_egress_dropped_media_seconds_total", "Media time composite recordings, RTMP and HLS dropped because the machine or their encoder was more than MaxLag behind real time (the output skips it; audio and video stay in step), by kind.",
		[]string{"kind"}, nil)
	descRepeated = prometheus.NewDesc("meridian_egress_repeated_media_seconds_total", "Media time composite recordings, RTMP and HLS showed a repeated (still) picture instead of a new one, by kind and reason: encoder (the encoder was behind), late (the compositor caught up after a stall), stop (time owed when the job stopped).",
		[]string{"kind", "reason"}, nil)
)

// Collector exports the runner's jobs and ffmpeg CPU at scrape time.
func (r *Runner) Collector() prometheus.Collector { return runnerCollector{r} }

type runnerCollector struct{ r *Runner }

func (c runnerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descJobs
	ch <- descFFmpegCPU
	ch <- descDropped
	ch <- descRepeated
}

func (c runnerCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ kind, state string }
	counts := map[key]int{}
	for _, st := range c.r.List() {
		counts[key{string(st.Kind), string(st.State)}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descJobs, prometheus.GaugeValue, float64(n), k.kind, k.state)
	}
	for role, d := range c.r.ChildCPUByRole() {
		ch <- prometheus.MustNewConstMetric(descFFmpegCPU, prometheus.CounterValue, d.Seconds(), role)
	}
	for kind, d := range c.r.DroppedMedia() {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, d.Seconds(), kind)
	}
	for k, d := range c.r.RepeatedMedia() {
		ch <- prometheus.MustNewConstMetric(descRepeated, prometheus.CounterValue, d.Seconds(), k.Kind, k.Reason)
	}
}
