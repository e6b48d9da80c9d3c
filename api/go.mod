module github.com/pulse-iot/pulse/api

go 1.26
