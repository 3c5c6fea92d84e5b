package service_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sailmaker/sailmaker/builder/buildkitd"
	"github.com/sailmaker/sailmaker/internal/faultproxy"
	"github.com/sailmaker/sailmaker/service"
	"github.com/sailmaker/sailmaker/store"
)

// Actions taken while a fault is in force.
const (
	actNothing     = "nothing"
	actCancel      = "cancel"
	actKillService = "service kill -9"
	actKillBK      = "buildkitd kill -9"
)

// matrixTarget is where in a push a fault strikes.
type matrixTarget struct {
	name   string
	image  string // "" any of the build's two images, else pilot or proxyv2
	target faultproxy.Target
}

var matrixTargets = []matrixTarget{
	{"blob upload", "", faultproxy.BlobUpload},
	{"manifest by digest", "", faultproxy.ManifestByDigest},
	{"attachment", "", faultproxy.Attachment},
	{"tag PUT 1 (pilot)", "pilot", faultproxy.TagPut},
	{"tag PUT 2 (proxyv2)", "proxyv2", faultproxy.TagPut},
}

var matrixFaults = []faultproxy.Fault{faultproxy.Burst503, faultproxy.Drop, faultproxy.Delay}

// matrixCell is one case of the matrix and what became of it.
type matrixCell struct {
	id     string
	fault  faultproxy.Fault
	target matrixTarget
	action string
	prefix string // its images are <prefix>/pilot and <prefix>/proxyv2
	rule   *faultproxy.Armed
	build  string
	acted  string // what the action got (the cancel's answer)

	final    *service.Build
	tags     int
	ledger   string // its ledger entries, by action
	problems []string
}

func (c *matrixCell) problem(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *matrixCell) arm(e *faultEnv, gate bool) {
	r := faultproxy.Rule{Repo: c.prefix + "/", Target: c.target.target, Fault: c.fault, Gate: gate}
	if c.target.image != "" {
		r.Repo = c.prefix + "/" + c.target.image
	}
	switch c.fault {
	case faultproxy.Burst503:
		r.Count = 0 // until disarmed: longer than go-containerregistry's retries
	case faultproxy.Drop:
		r.Count = 1
	case faultproxy.Delay:
		r.Count, r.Delay = 1, 3*time.Second
	}
	c.rule = e.proxy.Arm(r)
}

// matrixLane is one `sailmaker serve` and the cells it runs.
type matrixLane struct {
	name   string
	e      *faultEnv
	state  string
	listen string
	ownBK  bool
	p      *serveProc
	a      api
	cells  []*matrixCell
}

func (l *matrixLane) start(t *testing.T) {
	l.p = startServe(t, l.state, l.listen)
	l.a = api{t, l.p.url}
}

// waitHits waits until every cell's fault struck, or its build ended
// before.
func (l *matrixLane) waitHits(t *testing.T, cells []*matrixCell, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for _, c := range cells {
		for {
			select {
			case <-c.rule.Hit():
			default:
				b := l.a.build(c.build, "")
				if b.State.Final() {
					c.problem("the build ended (%s) before the fault struck", b.State)
					break
				}
				require.True(t, time.Now().Before(deadline), "%s: the fault never struck (build %s)", c.id, b.State)
				time.Sleep(100 * time.Millisecond)
				continue
			}
			break
		}
	}
}

func (l *matrixLane) waitFinal(t *testing.T, cells []*matrixCell, timeout time.Duration) {
	for _, c := range cells {
		c.final = waitFinal(t, l.a, c.build, timeout)
	}
}

func (l *matrixLane) settle(t *testing.T, cells []*matrixCell) {
	for _, c := range cells {
		c.rule.Disarm()
	}
	require.NoError(t, l.e.proxy.WaitIdle(l.name+"/", 2*time.Minute))
}

// runNothingOrCancel runs cells whose action is none or a cancel, all at
// once: each cancel goes out as its fault strikes.
func (l *matrixLane) runNothingOrCancel(t *testing.T, cells []*matrixCell) {
	for _, c := range cells {
		c.arm(l.e, false)
		c.build = submit(t, l.a, l.e.recipe(t, c.prefix, false))
	}
	var wg sync.WaitGroup
	for _, c := range cells {
		if c.action != actCancel {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-c.rule.Hit():
			case <-time.After(5 * time.Minute):
				c.acted = "fault never struck"
				return
			}
			resp, err := http.Post(l.p.url+"/v1/builds/"+c.build+"/cancel", "", nil)
			if err != nil {
				c.acted = err.Error()
				return
			}
			resp.Body.Close()
			c.acted = fmt.Sprint(resp.StatusCode)
		}()
	}
	l.waitHits(t, cells, 5*time.Minute)
	wg.Wait()
	l.waitFinal(t, cells, 5*time.Minute)
	l.settle(t, cells)
}

// runKills runs cells whose action kills the service or buildkitd, in
// rounds: every build of a round is held at its fault, then the faults
// go on and, at once, the process is killed.
func (l *matrixLane) runKills(t *testing.T, cells []*matrixCell, round int) {
	for start := 0; start < len(cells); start += round {
		batch := cells[start:min(start+round, len(cells))]
		for _, c := range batch {
			c.arm(l.e, true)
			c.build = submit(t, l.a, l.e.recipe(t, c.prefix, false))
		}
		l.waitHits(t, batch, 5*time.Minute)
		for _, c := range batch {
			c.rule.Release()
		}
		switch batch[0].action {
		case actKillService:
			l.p.kill9()
		case actKillBK:
			pid := readPID(t, buildkitd.PIDFile(filepath.Join(l.state, "buildkitd")))
			require.Positive(t, pid)
			require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		}
		for _, c := range batch {
			c.acted = "killed"
		}
		if batch[0].action == actKillBK {
			// The faults stay until each attempt is over (a 503 burst
			// outlasts go-containerregistry's retries): the publish
			// fails while buildkitd is down or coming back.
			deadline := time.Now().Add(2 * time.Minute)
			for _, c := range batch {
				for {
					b := l.a.build(c.build, "")
					if b.State.Final() || b.State == service.StateQueued || b.Attempts > 1 || time.Now().After(deadline) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}
		l.settle(t, batch)
		if batch[0].action == actKillService {
			l.start(t)
		}
		l.waitFinal(t, batch, 5*time.Minute)
	}
}

// check restarts the service (it settles the ledger's pending intents),
// then checks every cell: its build ended; every tag under its prefix
// names a complete image, is in the ledger with the build, and is on the
// build's record; the audit finds nothing.
func (l *matrixLane) check(t *testing.T) {
	l.p.term(2 * time.Minute)
	l.start(t)
	status, body := l.a.do("GET", "/v1/builds?state=queued,fetching,building,pushing", "", nil)
	require.Equal(t, http.StatusOK, status)
	assert.NotContains(t, string(body), `"id"`, "every build has ended")
	ledger := ledgerTags(t, l.state)
	entries := ledgerEntries(t, l.state)
	findings := l.e.auditVerify(t, l.state, l.name)
	for _, c := range l.cells {
		b := l.a.build(c.build, "")
		c.final = b
		if !b.State.Final() {
			c.problem("build %s is %s", c.build, b.State)
		}
		select {
		case <-c.rule.Hit():
		default:
			c.problem("the fault never struck")
		}
		tags := l.e.tagsUnder(t, c.prefix)
		c.tags = len(tags)
		counts := map[string]int{}
		for _, en := range entries {
			if strings.HasPrefix(en.Repository, c.prefix+"/") {
				counts[en.Action]++
			}
		}
		var parts []string
		for _, a := range []string{store.ActionIntent, store.ActionPush, store.ActionAbandoned, store.ActionForce, store.ActionRefused} {
			if counts[a] > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", a, counts[a]))
			}
		}
		c.ledger = strings.Join(parts, ", ")
		if c.ledger == "" {
			c.ledger = "-"
		}
		for _, tg := range tags {
			by, confirmed := builtBy(ledger[tg.Repo+":"+tg.Tag], tg.Digest)
			switch {
			case by != c.build:
				c.problem("%s:%s is not in the ledger with build %s (ledger: %q)", tg.Repo, tg.Tag, c.build, by)
			case !confirmed:
				c.problem("%s:%s is only intended in the ledger after a restart", tg.Repo, tg.Tag)
			}
			if missing := l.e.complete(t, tg); len(missing) > 0 {
				c.problem("%s:%s names an incomplete image: %s", tg.Repo, tg.Tag, strings.Join(missing, ", "))
			}
			if !imageListed(b, l.e.addr, tg) {
				c.problem("build %s does not list %s:%s", c.build, tg.Repo, tg.Tag)
			}
		}
		for _, f := range findings {
			if strings.HasPrefix(f.Repository, c.prefix+"/") {
				c.problem("audit: %s %s: %s", f.Code, f.Image, f.Message)
			}
		}
	}
}

// The fault-injection matrix of issue 16: {503 burst, dropped connection,
// delay} × {blob upload, manifest by digest, attachment, each tag PUT} ×
// {nothing, cancel, service kill -9, buildkitd kill -9}, each case a
// build of the fixture into repositories of its own, through a real
// `sailmaker serve`, a real buildkitd and the embedded registry behind
// the fault proxy. After each: every build is in a final state, every tag
// in the registry is in the ledger with its build (and on its record),
// no tag names an incomplete image, and `sailmaker audit verify` finds
// nothing. Three services run side by side: one for the cases where
// nothing or a cancel happens, one killed (in rounds of five cases, each
// held at its fault), one whose own supervised buildkitd is killed.
func TestFaultMatrix(t *testing.T) {
	e := sharedFaultEnv(t)
	t.Parallel()
	started := time.Now()
	lanes := map[string]*matrixLane{}
	for _, name := range []string{"mxa", "mxb", "mxc"} {
		l := &matrixLane{name: name, e: e, state: stateDir(t), listen: freeAddr(t), ownBK: name == "mxc"}
		e.serveConfig(t, l.state, l.ownBK, map[string]any{"concurrency": 5, "retries": 1})
		if l.ownBK {
			t.Cleanup(func() { stopBuildKit(t, l.state) })
		}
		lanes[name] = l
	}
	laneOf := map[string]string{actNothing: "mxa", actCancel: "mxa", actKillService: "mxb", actKillBK: "mxc"}
	var cells []*matrixCell
	for _, f := range matrixFaults {
		for _, tg := range matrixTargets {
			for _, act := range []string{actNothing, actCancel, actKillService, actKillBK} {
				c := &matrixCell{id: fmt.Sprintf("c%02d", len(cells)+1), fault: f, target: tg, action: act}
				l := lanes[laneOf[act]]
				c.prefix = l.name + "/" + c.id
				l.cells = append(l.cells, c)
				cells = append(cells, c)
			}
		}
	}

	t.Run("lanes", func(t *testing.T) {
		for _, l := range []*matrixLane{lanes["mxa"], lanes["mxb"], lanes["mxc"]} {
			t.Run(l.name, func(t *testing.T) {
				t.Parallel()
				l.start(t)
				switch l.name {
				case "mxa":
					l.runNothingOrCancel(t, l.cells)
				case "mxb":
					l.runKills(t, l.cells, len(matrixTargets))
				case "mxc":
					// Its own buildkitd compiles the fixture once first.
					warm := submit(t, l.a, e.recipe(t, "mxc-warm", false))
					require.Equal(t, service.StateSucceeded, waitFinal(t, l.a, warm, 10*time.Minute).State)
					l.runKills(t, l.cells, len(matrixTargets))
				}
				l.check(t)
			})
		}
	})

	sort.Slice(cells, func(i, j int) bool { return cells[i].id < cells[j].id })
	var out strings.Builder
	w := tabwriter.NewWriter(&out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "CELL\tFAULT\tTARGET\tACTION\tACTED\tSTATE\tATTEMPTS\tTAGS\tLEDGER\tINVARIANTS\tERROR")
	bad := 0
	for _, c := range cells {
		state, attempts, errText := "-", "-", ""
		if c.final != nil {
			state, attempts, errText = string(c.final.State), fmt.Sprint(c.final.Attempts), errorLine(c.final.Error)
		}
		if len(errText) > 70 {
			errText = errText[:70] + "..."
		}
		inv := "ok"
		if len(c.problems) > 0 {
			inv = fmt.Sprintf("%d FAILED", len(c.problems))
			bad++
		}
		acted := c.acted
		if acted == "" {
			acted = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", c.id, c.fault, c.target.name, c.action, acted, state, attempts, c.tags, c.ledger, inv, errText)
	}
	w.Flush()
	t.Logf("fault matrix (%d cases, %d with problems, %s):\n%s", len(cells), bad, time.Since(started).Round(time.Second), out.String())
	for _, c := range cells {
		for _, p := range c.problems {
			t.Errorf("%s (%s × %s × %s): %s", c.id, c.fault, c.target.name, c.action, p)
		}
	}
}
