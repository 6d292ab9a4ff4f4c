package egress

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/meridian-video/meridian/control/state"
	"github.com/meridian-video/meridian/geo"
	"github.com/meridian-video/meridian/shared/edgeapi"
	"github.com/meridian-video/meridian/shared/egressapi"
)

// StartTimeout: a job still "starting" this long after it was recorded is
// checked with its edge; if the edge does not have it (the control node
// died between recording it and asking the edge), it is failed.
const StartTimeout = time.Minute

// Loop is leader-only: it fails the jobs of edges that are down or gone
// (reason "edge <id> lost", with the failed webhook), fails jobs that never
// reached their edge, and starts the autoStartConfig jobs of sessions that
// began.
func (s *Service) Loop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.CheckEvery)
	defer t.Stop()
	tried := map[string]bool{}     // session+kind auto-starts attempted by this leader
	checked := map[string]uint64{} // job -> edge record version its edge was asked about
	var seenSessions uint64
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.failLostJobs(ctx, checked)
		var idx uint64
		s.node.FSM().Read(func(st *state.Store) { idx = st.TableIndex("sessions") })
		if idx != seenSessions {
			seenSessions = idx
			s.autoStart(ctx, tried)
		}
	}
}

// failLostJobs fails the jobs of edges that are down or gone. It also asks
// an edge about jobs it may have lost while staying up: a job still
// starting long after it was recorded, and the jobs of an edge whose
// record changed since (it re-registered: a restarted edge forgot its
// jobs). checked remembers which edge version a job was checked against.
func (s *Service) failLostJobs(ctx context.Context, checked map[string]uint64) {
	lost := map[string][]string{}
	var ask []*state.Job
	versions := map[string]uint64{}
	now := s.cfg.Now()
	live := map[string]bool{}
	s.node.FSM().Read(func(st *state.Store) {
		for _, j := range st.ActiveJobs("", "") {
			live[j.ID] = true
			e, ok := st.Edge(j.EdgeID)
			switch {
			case !ok || !e.Up:
				lost[j.EdgeID] = append(lost[j.EdgeID], j.ID)
			case j.State == egressapi.StateStarting && j.Seq == 0 && now.Sub(j.CreatedAt) > StartTimeout,
				e.ModifyIndex > j.CreateIndex && checked[j.ID] != e.ModifyIndex:
				ask = append(ask, j)
				versions[j.ID] = e.ModifyIndex
			}
		}
	})
	for id := range checked {
		if !live[id] {
			delete(checked, id)
		}
	}
	for edgeID, ids := range lost {
		s.log.Warn("egress: failing the jobs of a lost edge", "edge", edgeID, "jobs", len(ids))
		s.fail(ctx, ids, "edge "+edgeID+" lost")
	}
	for _, j := range ask {
		var edge *state.Edge
		s.node.FSM().Read(func(st *state.Store) { edge, _ = st.Edge(j.EdgeID) })
		if edge == nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var st egressapi.Status
		status, err := s.call(cctx, edge, edgeapi.EgressStatusPath, edgeapi.EgressStop{ID: j.ID}, &st)
		cancel()
		switch {
		case err == nil:
			checked[j.ID] = versions[j.ID]
			if _, err := s.applyStatus(ctx, edge, st); err != nil {
				s.log.Warn("egress: applying a polled status", "job", j.ID, "err", err)
			}
		case status == http.StatusNotFound:
			checked[j.ID] = versions[j.ID]
			s.fail(ctx, []string{j.ID}, "edge "+edge.ID+" no longer runs the job (restarted, or never started it)")
		}
	}
}

// AutoStart is the part of a room's autoStartConfig Meridian runs:
// {"recording": {config, awsDirPath, webhookUrl}, "hls": {config,
// webhookUrl, recording: {enabled}}, "livestream": {outputs, config}}
// (livestream is a Meridian extension). templateUrl, transcription and
// summary are accepted and ignored, as on the start routes.
type AutoStart struct {
	Recording  *autoJob `json:"recording"`
	HLS        *autoJob `json:"hls"`
	Livestream *autoJob `json:"livestream"`
}

type autoJob struct {
	Config     egressapi.Config       `json:"config"`
	AWSDirPath string                 `json:"awsDirPath"`
	WebhookURL string                 `json:"webhookUrl"`
	Outputs    []egressapi.RTMPOutput `json:"outputs"`
	Recording  *struct {
		Enabled bool `json:"enabled"`
	} `json:"recording"`
}

// ParseAutoStart reads a room's stored autoStartConfig.
func ParseAutoStart(raw []byte) (AutoStart, error) {
	var a AutoStart
	if len(raw) == 0 {
		return a, nil
	}
	err := json.Unmarshal(raw, &a)
	return a, err
}

func (s *Service) autoStart(ctx context.Context, tried map[string]bool) {
	type todo struct {
		room *state.Room
		ss   *state.Session
		kind egressapi.Kind
		cfg  *autoJob
	}
	var list []todo
	live := map[string]bool{}
	s.node.FSM().Read(func(st *state.Store) {
		for _, ss := range st.OngoingSessions() {
			live[ss.ID] = true
			r, ok := st.RoomByRoomID(ss.RoomID)
			if !ok || len(r.AutoStartConfig) == 0 {
				continue
			}
			a, err := ParseAutoStart(r.AutoStartConfig)
			if err != nil {
				continue
			}
			for _, k := range []struct {
				kind egressapi.Kind
				cfg  *autoJob
			}{{egressapi.KindComposite, a.Recording}, {egressapi.KindHLS, a.HLS}, {egressapi.KindRTMP, a.Livestream}} {
				if k.cfg == nil || tried[ss.ID+"/"+string(k.kind)] {
					continue
				}
				done := false
				for _, j := range st.SessionJobs(ss.ID, k.kind) {
					done = done || j.Auto
				}
				if !done {
					list = append(list, todo{r, ss, k.kind, k.cfg})
				}
			}
		}
	})
	for k := range tried {
		if sid, _, _ := strings.Cut(k, "/"); !live[sid] {
			delete(tried, k)
		}
	}
	for _, t := range list {
		tried[t.ss.ID+"/"+string(t.kind)] = true
		job := state.Job{Kind: t.kind, Auto: true, WebhookURL: t.cfg.WebhookURL, DirPath: t.cfg.AWSDirPath, Outputs: t.cfg.Outputs}
		spec := egressapi.Spec{Config: t.cfg.Config, DirPath: t.cfg.AWSDirPath, Outputs: t.cfg.Outputs}
		if t.kind == egressapi.KindHLS && t.cfg.Recording != nil {
			spec.HLS.Record = t.cfg.Recording.Enabled
		}
		// The record keeps the normalized config (defaults filled), as for
		// a job started through the API; the room's config was checked
		// when it was stored, so an error here is left to Start to report.
		job.Config = spec.Config
		if cfg, err := spec.Config.Normalize(t.kind, "config"); err == nil {
			job.Config = cfg
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		j, err := s.Start(cctx, t.room, job, spec)
		cancel()
		if err != nil {
			s.log.Warn("egress: autoStartConfig job did not start", "room", t.room.RoomID, "session", t.ss.ID, "kind", t.kind, "err", err)
			continue
		}
		s.log.Info("egress: autoStartConfig job started", "room", t.room.RoomID, "session", t.ss.ID, "kind", t.kind, "job", j.ID)
	}
}

// allowedRegions resolves every pin that applies to a room (its own, its
// geoFence through the operator's table, its API key's) to the regions
// that all of them allow, among the regions of registered edges and those
// the pins name; nil when nothing is pinned.
func allowedRegions(st *state.Store, catalog *geo.Catalog, fences geo.FenceTable, room *state.Room) ([]string, bool) {
	var ps []geo.Policy
	if !room.Pin.Empty() {
		ps = append(ps, geo.Policy{Regions: room.Pin.Regions, Jurisdictions: room.Pin.Jurisdictions})
	}
	if room.GeoFence != "" {
		p, ok := fences.Policy(room.GeoFence)
		if !ok {
			return nil, false
		}
		ps = append(ps, p)
	}
	if key, ok := st.APIKey(room.APIKey); ok && !key.Pin.Empty() {
		ps = append(ps, geo.Policy{Regions: key.Pin.Regions, Jurisdictions: key.Pin.Jurisdictions})
	}
	if len(ps) == 0 {
		return nil, true
	}
	out := []string{}
	seen := map[string]bool{}
	add := func(name string) {
		if name != "" && !seen[name] && geo.AllowedByAll(catalog.Lookup(name), ps...) {
			seen[name] = true
			out = append(out, name)
		}
	}
	for _, e := range st.Edges() {
		add(e.Region)
	}
	for _, p := range ps {
		for _, r := range p.Regions {
			add(r)
		}
	}
	return out, true
}
