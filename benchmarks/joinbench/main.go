// Command joinbench measures browser join-to-first-frame: two headless
// Chromium pages open the meeting page (/meet/{room}) of a running
// `meridian dev` at the same moment, each with a fake camera and microphone,
// and the time until each one shows the other's first video frame is
// measured, broken down by step. K repetitions, a fresh room each; the
// browsers stay up between repetitions (their start-up is not part of a
// join). Numbers only, never pass/fail. See docs/benchmarks.md and
// benchmarks/join.sh.
//
//	joinbench -url http://127.0.0.1:PORT -api-key K -api-secret S -reps 20 -json out.json
//	joinbench report out.json [more.json]   # the tables again
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/sync/errgroup"

	"github.com/meridian-video/meridian/control/auth"
	"github.com/meridian-video/meridian/test/chromium"
)

// probe records the steps of a join inside each page (see probe.js).
//
//go:embed probe.js
var probe string

func main() {
	if len(os.Args) > 1 && os.Args[1] == "report" {
		if err := runReport(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "joinbench report:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "joinbench:", err)
		os.Exit(1)
	}
}

type options struct {
	url, key, secret string
	chromium         string
	reps             int
	timeout          time.Duration
	pause            time.Duration
	jsonOut, label   string
	verbose          bool
	query            string     // -query as given
	params           url.Values // parsed: more meeting page parameters
}

func run() error {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080", "meridian dev base URL (API, /meet and /sdk)")
	flag.StringVar(&o.key, "api-key", "", "API key")
	flag.StringVar(&o.secret, "api-secret", "", "API secret")
	flag.StringVar(&o.chromium, "chromium", envOr("MERIDIAN_CHROMIUM", "/usr/bin/chromium"), "Chromium binary")
	flag.IntVar(&o.reps, "reps", 20, "repetitions (a fresh room and two fresh page loads each)")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Second, "give up on a repetition after this long")
	flag.DurationVar(&o.pause, "pause", time.Second, "pause between repetitions (the pages left the previous room)")
	flag.StringVar(&o.jsonOut, "json", "", "write the samples and the summary here")
	flag.StringVar(&o.label, "label", "meridian", "label stored with the results")
	flag.BoolVar(&o.verbose, "v", false, "one line per repetition on stderr")
	flag.StringVar(&o.query, "query", "", "more meeting page parameters, e.g. simulcast=0 (see web/meet/meet.js)")
	flag.Parse()
	if o.key == "" || o.secret == "" {
		return errors.New("-api-key and -api-secret are required")
	}
	if _, err := os.Stat(o.chromium); err != nil {
		return fmt.Errorf("chromium not found at %s (apt-get install -y chromium, or -chromium PATH)", o.chromium)
	}
	var err error
	if o.params, err = url.ParseQuery(o.query); err != nil {
		return fmt.Errorf("-query %q: %w", o.query, err)
	}
	o.url = strings.TrimRight(o.url, "/")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var pages [2]*browser
	for i, name := range []string{"A", "B"} {
		b, err := startBrowser(ctx, o.chromium, name)
		if err != nil {
			return err
		}
		defer b.close()
		pages[i] = b
	}
	res := result{Label: o.label, Time: time.Now().UTC(), URL: o.url}
	for rep := 0; rep < o.reps; rep++ {
		s, err := oneRep(ctx, o, pages, rep)
		if err != nil {
			res.Failed = append(res.Failed, fmt.Sprintf("rep %d: %v", rep, err))
			fmt.Fprintf(os.Stderr, "joinbench: rep %d: %v\n", rep, err)
		} else {
			res.Samples = append(res.Samples, s...)
			if o.verbose {
				for _, x := range s {
					fmt.Fprintf(os.Stderr, "joinbench: rep %d page %s: first frame of the other at %.0f ms\n", rep, x.Page, x.Marks["frame-presented"])
				}
			}
		}
		for _, b := range pages {
			_ = b.navigate(ctx, "about:blank")
		}
		time.Sleep(o.pause)
	}
	res.summarize()
	printReport(os.Stdout, res)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if len(res.Samples) == 0 {
		return errors.New("no repetition completed")
	}
	return nil
}

// oneRep opens a fresh room on both pages at once and waits until each
// shows the other's first video frame; it returns each page's marks.
func oneRep(ctx context.Context, o options, pages [2]*browser, rep int) ([]sample, error) {
	room, err := createRoom(o)
	if err != nil {
		return nil, err
	}
	links := make([]string, 2)
	for i, b := range pages {
		tok, err := auth.Mint(auth.MintOptions{APIKey: o.key, Secret: []byte(o.secret), Roles: []string{auth.RoleRTC},
			Permissions: []string{auth.PermAllowJoin}, RoomID: room, ParticipantID: fmt.Sprintf("%s%d", strings.ToLower(b.name), rep), TTL: time.Hour})
		if err != nil {
			return nil, err
		}
		q := maps.Clone(o.params) // ParseQuery never returns nil
		q.Set("token", tok)
		q.Set("name", b.name)
		links[i] = o.url + "/meet/" + room + "?" + q.Encode()
	}
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	// Both pages at once; the first that fails cancels the other's wait
	// (it would otherwise sit out the whole timeout) and is the error.
	g, gctx := errgroup.WithContext(rctx)
	out := make([]sample, 2)
	for i, b := range pages {
		g.Go(func() error {
			if err := b.navigate(gctx, links[i]); err != nil {
				return fmt.Errorf("page %s: open the meeting: %w", b.name, err)
			}
			var err error
			out[i], err = b.waitFirstFrame(gctx)
			out[i].Rep = rep
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return out, err
	}
	// A page's marks were read when it saw the other's frame, which can be
	// before its own camera's first frame went out (the other page still
	// waiting for it): read them again until that mark is in.
	for i, b := range pages {
		out[i].Marks = b.marksOnceSent(rctx, out[i].Marks)
	}
	return out, nil
}

// marksOnceSent reads the page's marks again until its camera's first
// packet was sent (pub-video-sent), for at most a second or until ctx is
// done; it returns the latest marks read, or have if none could be read.
func (b *browser) marksOnceSent(ctx context.Context, have map[string]float64) map[string]float64 {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, ok := have["pub-video-sent"]; ok {
			return have
		}
		if m, err := b.readMarks(ctx); err == nil {
			have = m
		}
		select {
		case <-ctx.Done():
			return have
		case <-tick.C:
		}
	}
}

// createRoom asks the API for a fresh room.
func createRoom(o options) (string, error) {
	tok, err := auth.Mint(auth.MintOptions{APIKey: o.key, Secret: []byte(o.secret), Roles: []string{auth.RoleCrawler},
		Permissions: []string{auth.PermAllowJoin, auth.PermAllowMod}, TTL: time.Hour})
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequest("POST", o.url+"/v2/rooms", bytes.NewReader([]byte("{}")))
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var room struct {
		RoomID string `json:"roomId"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &room) != nil || room.RoomID == "" {
		return "", fmt.Errorf("create room: %d %s", resp.StatusCode, body)
	}
	return room.RoomID, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// browser is one headless Chromium with one tab and the probe installed.
type browser struct {
	name   string
	ctx    context.Context
	cancel func()
	dir    string
}

func startBrowser(parent context.Context, path, name string) (*browser, error) {
	dir, err := os.MkdirTemp("", "joinbench-"+name+"-")
	if err != nil {
		return nil, err
	}
	// The same headless settings as test/browser (WebRTC on loopback, fake devices).
	opts := chromium.Options(path, dir)
	actx, acancel := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{name: name, ctx: ctx, dir: dir, cancel: func() { cancel(); acancel() }}
	if err := chromedp.Do(ctx); err != nil {
		b.close()
		return nil, fmt.Errorf("start chromium %s: %w", name, err)
	}
	err = chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: probe})
		return err
	}))
	if err != nil {
		b.close()
		return nil, fmt.Errorf("chromium %s: install the probe: %w", name, err)
	}
	return b, nil
}

func (b *browser) close() {
	b.cancel()
	_ = os.RemoveAll(b.dir)
}

// navigate opens u in b's tab, bounded by ctx.
func (b *browser) navigate(ctx context.Context, u string) error {
	nctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return chromedp.Do(nctx, chromedp.Navigate(u))
}

// marksJS is the probe's marks plus the navigation and SDK fetch timings.
const marksJS = `(() => {
  const m = {...(window.__joinbench?.marks ?? {})};
  const nav = performance.getEntriesByType('navigation')[0];
  if (nav?.responseEnd) m['doc-fetched'] = nav.responseEnd;
  const res = performance.getEntriesByType('resource');
  const sdk = res.find(e => e.name.endsWith('/sdk/meridian.js'));
  if (sdk) { m['sdk-fetch-start'] = sdk.startTime; m['sdk-fetched'] = sdk.responseEnd; }
  const page = res.find(e => e.name.endsWith('/meet.js'));
  if (page) { m['meet-fetch-start'] = page.startTime; m['meet-fetched'] = page.responseEnd; }
  return m;
})()`

// readMarks reads the page's marks (marksJS), giving up when ctx ends.
func (b *browser) readMarks(ctx context.Context) (map[string]float64, error) {
	ectx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	return chromedp.Run(ectx, chromedp.Evaluate[map[string]float64](marksJS))
}

// waitFirstFrame polls the probe until the page presented the other's first
// frame, then returns every mark (ms since navigation start).
func (b *browser) waitFirstFrame(ctx context.Context) (sample, error) {
	s := sample{Page: b.name}
	for {
		m, err := b.readMarks(ctx)
		if err == nil {
			s.Marks = m
			if _, ok := m["frame-presented"]; ok {
				return s, nil
			}
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("page %s: no frame of the other page (marks %v, last error %v)", b.name, s.Marks, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
