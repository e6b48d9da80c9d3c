module github.com/pulse-iot/pulse/ingest

go 1.26
