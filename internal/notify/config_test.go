package notify

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseURLs(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"", nil, ""},
		{" , ", nil, ""},
		{"http://alertmanager:9093", []string{"http://alertmanager:9093"}, ""},
		{"http://am-0:9093/, https://am-1.example.com/alertmanager/", []string{"http://am-0:9093", "https://am-1.example.com/alertmanager"}, ""},
		{"http://user:secret@am:9093", []string{"http://user:secret@am:9093"}, ""},
		{"http://[::1]:9093", []string{"http://[::1]:9093"}, ""},
		{"alertmanager:9093", nil, "http:// or https://"},
		{"ftp://am:21", nil, "http:// or https://"},
		{"http://", nil, "must name a host"},
		{"http://am:0", nil, "port from 1 to 65535"},
		{"http://am:99999", nil, "port from 1 to 65535"},
		{"http://am:9093?x=1", nil, "query or fragment"},
		{"http://am:9093#top", nil, "query or fragment"},
		{"http://am:9093,http://am:9093/", nil, "listed twice"},
		{"http://user:secret@am:9093?x", nil, `"http://user:xxxxx@am:9093?x"`}, // the password never shows
		{"http://am:9093, %zz", nil, "must be a URL"},
	}
	for _, tt := range tests {
		got, err := ParseURLs(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseURLs(%q) error = %v, want one with %q", tt.in, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("ParseURLs(%q) error %q shows the password", tt.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseURLs(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// parseCase is an input of a Parse function and what it must return: want,
// or an error (and the zero value) with wantErr.
type parseCase[T comparable] struct {
	in      string
	want    T
	wantErr bool
}

func checkParse[T comparable](t *testing.T, name string, parse func(string) (T, error), tests []parseCase[T]) {
	t.Helper()
	for _, tt := range tests {
		got, err := parse(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s(%q) = %v, %v; want %v, error %v", name, tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseLinkBase(t *testing.T) {
	checkParse(t, "ParseLinkBase", ParseLinkBase, []parseCase[string]{
		{"", "", false},
		{"https://pulse.example.com", "https://pulse.example.com", false},
		{"https://pulse.example.com/api/", "https://pulse.example.com/api", false},
		{"pulse.example.com", "", true},
		{"https://pulse.example.com/?a=b", "", true},
	})
}

func TestParseResend(t *testing.T) {
	checkParse(t, "ParseResend", ParseResend, []parseCase[time.Duration]{
		{"", time.Minute, false},
		{"30s", 30 * time.Second, false},
		{"1s", time.Second, false},
		{"1h", time.Hour, false},
		{"999ms", 0, true},
		{"61m", 0, true},
		{"0", 0, true},
		{"-1m", 0, true},
		{"60", 0, true},
	})
}

func TestParseOutboxMax(t *testing.T) {
	checkParse(t, "ParseOutboxMax", ParseOutboxMax, []parseCase[int]{
		{"", 10000, false},
		{"1", 1, false},
		{"1000000", 1000000, false},
		{"0", 0, true},
		{"1000001", 0, true},
		{"1e4", 0, true},
	})
}
