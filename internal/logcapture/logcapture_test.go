package logcapture

import "testing"

func TestListenAddr(t *testing.T) {
	var b Buffer
	if got := b.ListenAddr("api"); got != "" {
		t.Fatalf("empty log: %q", got)
	}
	b.Write([]byte(`not json` + "\n"))
	b.Write([]byte(`{"logger":"api.admin","msg":"listening","addr":"127.0.0.1:2"}` + "\n"))
	b.Write([]byte(`{"logger":"api","msg":"starting"}` + "\n"))
	b.Write([]byte(`{"logger":"api","msg":"listening","addr":"127.0.0.1:1"}` + "\n"))
	tests := map[string]string{"api": "127.0.0.1:1", "api.admin": "127.0.0.1:2", "ingest": ""}
	for logger, want := range tests {
		if got := b.ListenAddr(logger); got != want {
			t.Errorf("ListenAddr(%q) = %q, want %q", logger, got, want)
		}
	}
}
