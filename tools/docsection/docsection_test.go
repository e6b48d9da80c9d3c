package docsection

import "testing"

func TestReplace(t *testing.T) {
	tests := []struct {
		name, doc, body, want string
	}{
		{"empty doc", "", "x\n", "<!-- nab:begin -->\nx\n<!-- nab:end -->\n"},
		{"appended", "# A\n\ntext\n", "x", "# A\n\ntext\n\n<!-- nab:begin -->\nx\n<!-- nab:end -->\n"},
		{"replaced in place", "# A\n<!-- nab:begin -->\nold\n<!-- nab:end -->\ntail\n", "new\n",
			"# A\n<!-- nab:begin -->\nnew\n<!-- nab:end -->\ntail\n"},
		{"other sections kept", "<!-- asd:begin -->\na\n<!-- asd:end -->\n", "n\n",
			"<!-- asd:begin -->\na\n<!-- asd:end -->\n\n<!-- nab:begin -->\nn\n<!-- nab:end -->\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(Replace([]byte(tt.doc), "nab", []byte(tt.body))); got != tt.want {
				t.Errorf("Replace = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestExtract(t *testing.T) {
	doc := []byte("a\n<!-- nab:begin -->\nbody\n<!-- nab:end -->\nb\n")
	if got := string(Extract(doc, "nab")); got != "<!-- nab:begin -->\nbody\n<!-- nab:end -->" {
		t.Errorf("Extract = %q", got)
	}
	if Extract(doc, "asd") != nil || Extract([]byte("<!-- nab:begin --> no end"), "nab") != nil {
		t.Error("Extract found a section that is not there")
	}
	// What Extract returns, appended to a regenerated doc, is found again.
	regen := Replace([]byte("new report\n"), "nab", []byte("body\n"))
	if string(Extract(regen, "nab")) != string(Extract(doc, "nab")) {
		t.Errorf("round trip: %q", regen)
	}
}
