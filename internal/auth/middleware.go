package auth

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// Realm is the realm of the WWW-Authenticate challenge.
const Realm = "pulse"

// Unauthorized is the error message of a 401.
const Unauthorized = "unauthorized"

// Middleware lets a request through when set does not require keys, or
// when it carries one of set's keys as "Authorization: Bearer <key>" (the
// scheme in any case) or "X-API-Key: <key>". Otherwise it answers 401
// {"error":"unauthorized"} with WWW-Authenticate: Bearer realm="pulse". It
// logs nothing: a rejected key must not end up in a log.
func Middleware(set *Set) gin.HandlerFunc {
	if !set.Required() {
		return func(c *gin.Context) { c.Next() }
	}
	return func(c *gin.Context) {
		bearer := bearerToken(c.GetHeader("Authorization"))
		apiKey := strings.TrimSpace(c.GetHeader("X-API-Key"))
		// Both are checked, whatever the first gives: the time taken does
		// not tell which header held a valid key.
		ok := set.Match(bearer)
		ok = set.Match(apiKey) || ok
		if !ok {
			c.Header("WWW-Authenticate", `Bearer realm="`+Realm+`"`)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": Unauthorized})
			return
		}
		c.Next()
	}
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// value, or "".
func bearerToken(h string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}
