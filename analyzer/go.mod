module github.com/pulse-iot/pulse/analyzer

go 1.26
