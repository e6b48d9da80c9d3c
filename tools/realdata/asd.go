package realdata

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pulse-iot/pulse/tools/nab"
)

// ASDStep is ASD's sampling interval: one row every 5 minutes.
const ASDStep = 300

// ErrNoASD is returned when a directory does not hold ASD.
var ErrNoASD = errors.New("not an ASD copy")

// ASDServer is one server of ASD: its training rows, then its test rows,
// each with one value per metric; labels cover the test rows.
type ASDServer struct {
	Name    string
	Metrics []string
	Train   [][]float64 // [row][metric]
	Test    [][]float64
	Labels  []bool // per test row
}

// LoadASD reads dir/csv/omi-N_{train,test}.csv for every server.
func LoadASD(dir string) ([]*ASDServer, error) {
	var servers []*ASDServer
	for n := 1; ; n++ {
		name := fmt.Sprintf("omi-%d", n)
		train := filepath.Join(dir, "csv", name+"_train.csv")
		if _, err := os.Stat(train); errors.Is(err, fs.ErrNotExist) {
			break
		}
		s := &ASDServer{Name: name}
		metrics, rows, _, err := readASD(train, false)
		if err != nil {
			return nil, err
		}
		s.Metrics, s.Train = metrics, rows
		metrics, rows, labels, err := readASD(filepath.Join(dir, "csv", name+"_test.csv"), true)
		if err != nil {
			return nil, err
		}
		if !slicesEqual(metrics, s.Metrics) {
			return nil, fmt.Errorf("%s: test and train metrics differ", name)
		}
		s.Test, s.Labels = rows, labels
		servers = append(servers, s)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("%w: no %s", ErrNoASD, filepath.Join(dir, "csv", "omi-1_train.csv"))
	}
	return servers, nil
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func readASD(p string, labelled bool) (metrics []string, rows [][]float64, labels []bool, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", p, err)
	}
	end := len(head)
	if labelled {
		end--
		if end < 1 || head[end] != "label" {
			return nil, nil, nil, fmt.Errorf("%s: no label column", p)
		}
	}
	if len(head) < 2 || head[0] != "idx" {
		return nil, nil, nil, fmt.Errorf("%s: want an idx column first", p)
	}
	metrics = head[1:end]
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		row := make([]float64, len(metrics))
		for j := range metrics {
			if row[j], err = strconv.ParseFloat(rec[1+j], 64); err != nil {
				return nil, nil, nil, fmt.Errorf("%s:%d: %w", p, line, err)
			}
		}
		rows = append(rows, row)
		if labelled {
			labels = append(labels, rec[end] == "1")
		}
	}
	return metrics, rows, labels, nil
}

// ASDWindows turns a server's labelled segments into NAB windows over its
// test rows. NAB centres a window of 10% of a file's rows divided by its
// number of anomalies on each labelled point; here each segment is
// widened by half that length on each side (clipped to the test rows),
// and windows that then overlap are merged.
func ASDWindows(labels []bool) []nab.Window {
	var segs []nab.Window
	for i, l := range labels {
		if !l {
			continue
		}
		if len(segs) > 0 && segs[len(segs)-1].End == i-1 {
			segs[len(segs)-1].End = i
			continue
		}
		segs = append(segs, nab.Window{Start: i, End: i})
	}
	if len(segs) == 0 {
		return nil
	}
	half := int(0.10 * float64(len(labels)) / float64(len(segs)) / 2)
	var ws []nab.Window
	for _, s := range segs {
		w := nab.Window{Start: max(s.Start-half, 0), End: min(s.End+half, len(labels)-1)}
		if len(ws) > 0 && w.Start <= ws[len(ws)-1].End+1 {
			ws[len(ws)-1].End = w.End
			continue
		}
		ws = append(ws, w)
	}
	return ws
}

// ASDCorpus runs every metric of every server through the pipeline, the
// training rows first (t = row × 300 s, test rows continuing), as one
// device per server. Only the test rows are scored, with no further
// probationary period: the training rows are the device's history.
func ASDCorpus(ctx context.Context, servers []*ASDServer, cfg Config) (*Corpus, error) {
	out := &Corpus{Name: "ASD"}
	for _, s := range servers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := len(s.Train) + len(s.Test)
		times := make([]float64, n)
		for i := range times {
			times[i] = float64(i * ASDStep)
		}
		var traces []Trace
		for m := range s.Metrics {
			vals := make([]float64, 0, n)
			for _, row := range s.Train {
				vals = append(vals, row[m])
			}
			for _, row := range s.Test {
				vals = append(vals, row[m])
			}
			traces = append(traces, RunSignal(cfg, times, vals))
		}
		ws := ASDWindows(s.Labels)
		out.Windows += len(ws)
		out.Files = append(out.Files, nab.File{Name: s.Name, Windows: ws, Probation: 0})
		out.Category = append(out.Category, s.Name)
		out.Signals = append(out.Signals, traces)
		out.Offsets = append(out.Offsets, len(s.Train))
	}
	return out, nil
}
