// Package docsection lets several generators share one Markdown file:
// each owns a section between HTML comment markers and replaces only it.
package docsection

import "bytes"

func markers(name string) (begin, end []byte) {
	return []byte("<!-- " + name + ":begin -->"), []byte("<!-- " + name + ":end -->")
}

// Extract returns section name of doc, markers included, or nil.
func Extract(doc []byte, name string) []byte {
	begin, end := markers(name)
	i := bytes.Index(doc, begin)
	if i < 0 {
		return nil
	}
	j := bytes.Index(doc[i:], end)
	if j < 0 {
		return nil
	}
	return doc[i : i+j+len(end)]
}

// Replace returns doc with section name's body replaced by body; a doc
// without the section gets it appended after a blank line.
func Replace(doc []byte, name string, body []byte) []byte {
	begin, end := markers(name)
	sec := make([]byte, 0, len(begin)+len(body)+len(end)+2)
	sec = append(append(append(sec, begin...), '\n'), body...)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		sec = append(sec, '\n')
	}
	sec = append(sec, end...)
	if old := Extract(doc, name); old != nil {
		i := bytes.Index(doc, old)
		out := append([]byte{}, doc[:i]...)
		out = append(out, sec...)
		return append(out, doc[i+len(old):]...)
	}
	out := bytes.TrimRight(append([]byte{}, doc...), "\n")
	if len(out) > 0 {
		out = append(out, "\n\n"...)
	}
	return append(append(out, sec...), '\n')
}
