package main

import (
	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/pulse-iot/pulse/internal/config"
)

func addRoutes(r *gin.Engine, cfg config.Config, pub publisher, m *ingestMetrics, log *zap.Logger) {
	r.POST("/metrics", handlePostMetrics(pub, cfg, m, log))
}
