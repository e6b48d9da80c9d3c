package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/pulse-iot/pulse/internal/logcapture"
	"github.com/pulse-iot/pulse/internal/proctest"
)

func TestParseFile(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []string
	}{
		{"empty", "", nil},
		{"one key, no newline", "k1", []string{"k1"}},
		{"keys, blanks and comments", "# ingest keys\nk1\n\n   \n  # rotated 2026-01\n k2 \n", []string{"k1", "k2"}},
		{"CRLF line ends", "k1\r\nk2\r\n", []string{"k1", "k2"}},
		{"tabs trimmed", "\tk1\t\n", []string{"k1"}},
		{"a # inside a key is kept", "ab#cd\n", []string{"ab#cd"}},
		{"only comments", "# nothing\n#\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseFile([]byte(tt.data)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseFile(%q) = %q, want %q", tt.data, got, tt.want)
			}
		})
	}
}

func TestKeysMatch(t *testing.T) {
	keys := NewKeys("alpha-key", "beta-key-much-longer-than-the-other", "", "alpha-key")
	if keys.Len() != 2 {
		t.Errorf("Len = %d, want 2 (empty and duplicate dropped)", keys.Len())
	}
	tests := []struct {
		candidate string
		want      bool
	}{
		{"alpha-key", true},
		{"beta-key-much-longer-than-the-other", true},
		{"", false},
		{"alpha", false},
		{"alpha-key ", false},
		{"alpha-keyX", false},
		{"ALPHA-KEY", false},
		{"beta-key", false},
	}
	for _, tt := range tests {
		if got := keys.Match(tt.candidate); got != tt.want {
			t.Errorf("Match(%q) = %v, want %v", tt.candidate, got, tt.want)
		}
	}
	var none *Keys
	if none.Match("alpha-key") || NewKeys().Match("") || none.Len() != 0 {
		t.Error("an empty set matches something")
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct{ header, want string }{
		{"Bearer abc", "abc"},
		{"bearer abc", "abc"},
		{"BEARER   abc  ", "abc"},
		{"Basic YWxhZGRpbjpvcGVu", ""},
		{"Bearer", ""},
		{"abc", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := bearerToken(tt.header); got != tt.want {
			t.Errorf("bearerToken(%q) = %q, want %q", tt.header, got, tt.want)
		}
	}
}

func newLogger(sink *logcapture.Buffer) *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(sink), zapcore.DebugLevel))
}

func testRouter(set *Set) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.GET("/open", func(c *gin.Context) { c.String(200, "open") })
	g := r.Group("/", Middleware(set))
	g.GET("/closed", func(c *gin.Context) { c.String(200, "closed") })
	return r
}

func TestMiddleware(t *testing.T) {
	on, err := NewSet([]string{"k-one", "k-two"}, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	off, _ := NewSet(nil, "", zap.NewNop())
	const challenge = `Bearer realm="pulse"`
	tests := []struct {
		name      string
		set       *Set
		path      string
		header    http.Header
		wantCode  int
		wantBody  string
		wantChall string
	}{
		{"no keys configured: auth off", off, "/closed", nil, 200, "closed", ""},
		{"no key", on, "/closed", nil, 401, `{"error":"unauthorized"}`, challenge},
		{"wrong bearer", on, "/closed", http.Header{"Authorization": {"Bearer k-three"}}, 401, `{"error":"unauthorized"}`, challenge},
		{"wrong X-API-Key", on, "/closed", http.Header{"X-Api-Key": {"k-on"}}, 401, `{"error":"unauthorized"}`, challenge},
		{"key as Basic credentials", on, "/closed", http.Header{"Authorization": {"Basic k-one"}}, 401, `{"error":"unauthorized"}`, challenge},
		{"bare key in Authorization", on, "/closed", http.Header{"Authorization": {"k-one"}}, 401, `{"error":"unauthorized"}`, challenge},
		{"bearer", on, "/closed", http.Header{"Authorization": {"Bearer k-one"}}, 200, "closed", ""},
		{"bearer, scheme lower case", on, "/closed", http.Header{"Authorization": {"bearer k-two"}}, 200, "closed", ""},
		{"X-API-Key", on, "/closed", http.Header{"X-Api-Key": {"k-two"}}, 200, "closed", ""},
		{"wrong bearer, right X-API-Key", on, "/closed", http.Header{"Authorization": {"Bearer nope"}, "X-Api-Key": {"k-one"}}, 200, "closed", ""},
		{"route without the middleware", on, "/open", nil, 200, "open", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tt.path, nil)
			req.Header = tt.header
			if req.Header == nil {
				req.Header = http.Header{}
			}
			rec := httptest.NewRecorder()
			testRouter(tt.set).ServeHTTP(rec, req)
			if rec.Code != tt.wantCode || rec.Body.String() != tt.wantBody || rec.Header().Get("WWW-Authenticate") != tt.wantChall {
				t.Errorf("GET %s = %d %q (WWW-Authenticate %q), want %d %q (%q)", tt.path, rec.Code, rec.Body, rec.Header().Get("WWW-Authenticate"),
					tt.wantCode, tt.wantBody, tt.wantChall)
			}
		})
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	// Write and rename, as the kubelet updates a mounted Secret: a reader
	// sees the old file or the new one, never half of it.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// fileSet returns a Set of the keys of a new key file holding data, and
// the file's path.
func fileSet(t *testing.T, data string) (*Set, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	writeFile(t, path, data)
	set, err := NewSet(nil, path, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return set, path
}

func TestSetFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeFile(t, path, "# comment\nfile-key-1\n")
	sink := &logcapture.Buffer{}
	set, err := NewSet([]string{"env-key-1"}, path, newLogger(sink))
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string, want map[string]bool) {
		t.Helper()
		for k, w := range want {
			if got := set.Match(k); got != w {
				t.Errorf("%s: Match(%s) = %v, want %v", step, k, got, w)
			}
		}
	}
	if !set.Required() || set.Len() != 2 {
		t.Fatalf("Required %v, Len %d: want true, 2", set.Required(), set.Len())
	}
	check("start", map[string]bool{"env-key-1": true, "file-key-1": true, "file-key-2": false})

	writeFile(t, path, "file-key-2\nfile-key-3\n")
	set.reload()
	check("rotated", map[string]bool{"env-key-1": true, "file-key-1": false, "file-key-2": true, "file-key-3": true})

	os.Remove(path)
	set.reload()
	set.reload()
	check("file gone: keys kept", map[string]bool{"file-key-2": true, "file-key-1": false})

	writeFile(t, path, "# emptied\n")
	set.reload()
	check("emptied: only the env key", map[string]bool{"env-key-1": true, "file-key-2": false})

	logs := sink.String()
	for _, k := range []string{"env-key-1", "file-key-1", "file-key-2", "file-key-3"} {
		if strings.Contains(logs, k) {
			t.Errorf("the log contains the key %s:\n%s", k, logs)
		}
	}
	if strings.Count(logs, "cannot read the key file") != 1 {
		t.Errorf("want one warning for the missing file over two reloads; log:\n%s", logs)
	}
}

// A configured key file without keys refuses everything instead of
// turning auth off.
func TestEmptyKeyFileFailsClosed(t *testing.T) {
	set, _ := fileSet(t, "\n# no keys yet\n")
	if !set.Required() || set.Len() != 0 || set.Match("") {
		t.Fatalf("Required %v, Len %d", set.Required(), set.Len())
	}
	rec := httptest.NewRecorder()
	testRouter(set).ServeHTTP(rec, httptest.NewRequest("GET", "/closed", nil))
	if rec.Code != 401 {
		t.Errorf("GET /closed with an empty key file = %d, want 401", rec.Code)
	}
}

func TestNewSetNeedsAReadableFile(t *testing.T) {
	_, err := NewSet(nil, filepath.Join(t.TempDir(), "missing"), zap.NewNop())
	if err == nil {
		t.Fatal("NewSet with a missing key file: nil error")
	}
	big := filepath.Join(t.TempDir(), "big")
	writeFile(t, big, strings.Repeat("k", maxFileBytes+1))
	if _, err := NewSet(nil, big, zap.NewNop()); err == nil || strings.Contains(err.Error(), "kkk") {
		t.Errorf("NewSet with a 1 MiB+1 file: %v, want an error without the content", err)
	}
}

func TestWatchFollowsTheFileAndStops(t *testing.T) {
	set, path := fileSet(t, "old-key\n")
	stop := proctest.StartLoop(t, "Watch", func(ctx context.Context) error { return set.Watch(ctx, 10*time.Millisecond) })
	// Same length, rewritten at once: only the content tells it changed.
	writeFile(t, path, "new-key\n")
	deadline := time.Now().Add(5 * time.Second)
	for !(set.Match("new-key") && !set.Match("old-key")) {
		if time.Now().After(deadline) {
			t.Fatal("the rewritten key file was not picked up within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()

	noFile, _ := NewSet([]string{"k"}, "", zap.NewNop())
	if err := noFile.Watch(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Watch without a file = %v, want nil at once", err)
	}
}
