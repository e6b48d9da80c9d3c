package nab

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Series is one data file of a corpus with its labelled windows.
type Series struct {
	Name    string // path relative to the data directory, with "/", e.g. "realTraffic/speed_6005.csv"
	Stamps  []string
	Times   []time.Time
	Values  []float64
	Raw     []string // the values as written in the file
	Windows []Window
}

// Category is the series' data folder, e.g. "realTraffic".
func (s *Series) Category() string { return path.Dir(s.Name) }

// Corpus is NAB's data, labels, profiles and the null detector's
// baselines.
type Corpus struct {
	Series     []*Series // sorted by name
	Windows    int       // labelled windows in the labels file (normalisation's perfect score)
	Profiles   []Profile // Standard, LowFP, LowFN as config/profiles.json defines them
	Baselines  map[string]float64
	Scoreboard map[string]map[string]float64 // results/final_results.json: detector → profile → score
}

// ErrNoCorpus is returned when dir does not hold NAB.
var ErrNoCorpus = errors.New("not a NAB checkout")

const stampLayout = "2006-01-02 15:04:05"

// parseStamp parses NAB's timestamps: "2014-04-10 00:00:00" in data files,
// "2014-04-10 07:15:00.000000" in label files.
func parseStamp(s string) (time.Time, error) {
	return time.Parse(stampLayout+".999999", s)
}

// Load reads the corpus of a NAB checkout at dir.
func Load(dir string) (*Corpus, error) {
	for _, p := range []string{"data", "labels/combined_windows.json", "config/profiles.json", "results/null"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return nil, fmt.Errorf("%w: %s has no %s", ErrNoCorpus, dir, p)
		}
	}
	c := &Corpus{Baselines: map[string]float64{}}
	var labels map[string][][2]string
	if err := readJSON(filepath.Join(dir, "labels/combined_windows.json"), &labels); err != nil {
		return nil, err
	}
	for _, ws := range labels {
		c.Windows += len(ws)
	}
	var profiles map[string]struct {
		CostMatrix struct{ TpWeight, FpWeight, FnWeight, TnWeight float64 }
	}
	if err := readJSON(filepath.Join(dir, "config/profiles.json"), &profiles); err != nil {
		return nil, err
	}
	for _, p := range Profiles {
		m, ok := profiles[p.Name]
		if !ok {
			return nil, fmt.Errorf("config/profiles.json: no profile %q", p.Name)
		}
		cm := m.CostMatrix
		c.Profiles = append(c.Profiles, Profile{p.Name, Cost{TP: cm.TpWeight, FP: cm.FpWeight, FN: cm.FnWeight, TN: cm.TnWeight}})
		b, err := nullBaseline(filepath.Join(dir, "results/null", "null_"+p.Name+"_scores.csv"))
		if err != nil {
			return nil, err
		}
		c.Baselines[p.Name] = b
	}
	if err := readJSON(filepath.Join(dir, "results/final_results.json"), &c.Scoreboard); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dataDir := filepath.Join(dir, "data")
	err := filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".csv") {
			return err
		}
		rel, err := filepath.Rel(dataDir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		ws, ok := labels[name]
		if !ok {
			return nil // NAB scores only labelled files
		}
		s, err := readSeries(p, name)
		if err != nil {
			return err
		}
		if s.Windows, err = windowsOf(s, ws); err != nil {
			return err
		}
		c.Series = append(c.Series, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(c.Series, func(a, b *Series) int { return strings.Compare(a.Name, b.Name) })
	return c, nil
}

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// nullBaseline reads the Score of the Totals row of a NAB scores file.
func nullBaseline(p string) (float64, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	if len(recs) < 2 || len(recs[0]) < 5 || recs[0][4] != "Score" || recs[len(recs)-1][0] != "Totals" {
		return 0, fmt.Errorf("%s: no Totals row with a Score", p)
	}
	v, err := strconv.ParseFloat(recs[len(recs)-1][4], 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p, err)
	}
	return v, nil
}

func readSeries(p, name string) (*Series, error) {
	s := &Series{Name: name}
	err := readCSV(p, func(head []string) error {
		if len(head) < 2 || head[0] != "timestamp" || head[1] != "value" {
			return errors.New("want a timestamp,value header")
		}
		return nil
	}, func(rec []string) error {
		t, err := parseStamp(rec[0])
		if err != nil {
			return err
		}
		v, err := strconv.ParseFloat(rec[1], 64)
		if err != nil {
			return err
		}
		s.Stamps = append(s.Stamps, rec[0])
		s.Times = append(s.Times, t)
		s.Values = append(s.Values, v)
		s.Raw = append(s.Raw, rec[1])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// readCSV reads the CSV file p: header checks its first record, row is
// called on each of the others (a slice reused from row to row). Errors
// name the file, and the line of a row's.
func readCSV(p string, header func(head []string) error, row func(rec []string) error) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	head, err := r.Read()
	if err == nil {
		err = header(head)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := row(rec); err != nil {
			return fmt.Errorf("%s:%d: %w", p, line, err)
		}
	}
}

// windowsOf turns labelled timestamps into row windows; as NAB requires,
// every label timestamp is a row's.
func windowsOf(s *Series, labels [][2]string) ([]Window, error) {
	index := func(stamp string) (int, error) {
		t, err := parseStamp(stamp)
		if err != nil {
			return 0, fmt.Errorf("%s: label %w", s.Name, err)
		}
		for i, u := range s.Times {
			if u.Equal(t) {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%s: label timestamp %s is no row's", s.Name, stamp)
	}
	ws := make([]Window, 0, len(labels))
	for _, l := range labels {
		a, err := index(l[0])
		if err != nil {
			return nil, err
		}
		b, err := index(l[1])
		if err != nil {
			return nil, err
		}
		if b < a || len(ws) > 0 && a <= ws[len(ws)-1].End {
			return nil, fmt.Errorf("%s: windows must be ordered and disjoint", s.Name)
		}
		ws = append(ws, Window{a, b})
	}
	return ws, nil
}

// WriteResults writes a detector's scores for s in NAB's results layout:
// dir/<detector>/<category>/<detector>_<file> with the columns
// timestamp, value, anomaly_score and label (1 inside a window), which
// NAB's run.py scores.
func WriteResults(dir, detector string, s *Series, scores []float64) error {
	if len(scores) != len(s.Values) {
		return fmt.Errorf("%s: %d scores for %d rows", s.Name, len(scores), len(s.Values))
	}
	p := resultsPath(dir, detector, s)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("timestamp,value,anomaly_score,label\n")
	w := 0
	for i := range s.Values {
		for w < len(s.Windows) && s.Windows[w].End < i {
			w++
		}
		label := "0"
		if w < len(s.Windows) && s.Windows[w].Start <= i {
			label = "1"
		}
		b.WriteString(s.Stamps[i])
		b.WriteByte(',')
		b.WriteString(s.Raw[i])
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(scores[i], 'g', -1, 64))
		b.WriteByte(',')
		b.WriteString(label)
		b.WriteByte('\n')
	}
	return os.WriteFile(p, []byte(b.String()), 0o644)
}

// resultsPath is where NAB keeps detector's results for s.
func resultsPath(dir, detector string, s *Series) string {
	return filepath.Join(dir, detector, filepath.FromSlash(path.Dir(s.Name)), detector+"_"+path.Base(s.Name))
}

// ReadResults reads the anomaly_score column of a results file as
// WriteResults (or a NAB detector) wrote it.
func ReadResults(dir, detector string, s *Series) ([]float64, error) {
	p := resultsPath(dir, detector, s)
	col := -1
	var scores []float64
	err := readCSV(p, func(head []string) error {
		if col = slices.Index(head, "anomaly_score"); col < 0 {
			return errors.New("no anomaly_score column")
		}
		return nil
	}, func(rec []string) error {
		v, err := strconv.ParseFloat(rec[col], 64)
		scores = append(scores, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(scores) != len(s.Values) {
		return nil, fmt.Errorf("%s: %d rows, the data file has %d", p, len(scores), len(s.Values))
	}
	return scores, nil
}
