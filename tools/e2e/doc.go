// Package e2e holds the end-to-end tests of the whole pipeline: the real
// ingest, analyzer and api binaries against a real redis-server, checked
// against a single-process reference of the detector.
package e2e
