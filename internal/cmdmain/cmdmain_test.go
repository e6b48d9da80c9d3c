package cmdmain

import (
	"flag"
	"io"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantOK  bool
		wantErr string
		wantN   int
	}{
		{"defaults", nil, true, "", 1},
		{"value", []string{"-n", "3"}, true, "", 3},
		{"help", []string{"-h"}, false, "", 1},
		{"unknown flag", []string{"-x"}, false, "flag provided but not defined: -x", 1},
		{"positional", []string{"-n", "2", "extra"}, false, `unexpected arguments ["extra"]`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			n := fs.Int("n", 1, "a number")
			ok, err := ParseFlags(fs, tt.args)
			if ok != tt.wantOK {
				t.Errorf("ok = %v, want %v", ok, tt.wantOK)
			}
			if got := errString(err); got != tt.wantErr {
				t.Errorf("err = %q, want %q", got, tt.wantErr)
			}
			if *n != tt.wantN {
				t.Errorf("-n = %d, want %d", *n, tt.wantN)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
