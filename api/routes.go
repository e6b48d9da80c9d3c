package main

import (
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
)

func addRoutes(r *gin.Engine, store resultStore, window int, log *zap.Logger) {
	r.GET("/analyze", handleAnalyze(store, window, log))
	r.GET("/anomalies", handleAnomalies(store, log))
	r.GET("/devices", handleDevices(store, log))
}
