package accounts

import (
	"sync"
	"time"
)

// tokenCacheTTL is how long an authenticated token is trusted without
// asking the database again. A revocation takes effect at once in the
// process that revoked the token and within this time in every other one;
// role and account changes reach a cached principal within it too.
const tokenCacheTTL = time.Second

// tokenCacheMax bounds the cache; when full it starts afresh.
const tokenCacheMax = 50_000

// tokenCache remembers recently authenticated tokens by their hash, so the
// hot paths (the purchase guard above all) spend one database round trip per
// request instead of two.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[[32]byte]tokenEntry
}

type tokenEntry struct {
	p         Principal
	tokenID   int64
	expiresAt *time.Time
	until     time.Time
}

func newTokenCache() *tokenCache { return &tokenCache{entries: map[[32]byte]tokenEntry{}} }

// get returns the cached principal of hash when it is fresh at now and the
// token has not expired.
func (c *tokenCache) get(hash [32]byte, now time.Time) (*Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[hash]
	c.mu.RUnlock()
	if !ok || !now.Before(e.until) || now.Before(e.until.Add(-2*tokenCacheTTL)) || (e.expiresAt != nil && !now.Before(*e.expiresAt)) {
		return nil, false
	}
	p := e.p
	return &p, true
}

func (c *tokenCache) put(hash [32]byte, e tokenEntry) {
	c.mu.Lock()
	if len(c.entries) >= tokenCacheMax {
		c.entries = map[[32]byte]tokenEntry{}
	}
	c.entries[hash] = e
	c.mu.Unlock()
}

// forget drops the entries of token id (its revocation).
func (c *tokenCache) forget(tokenID int64) {
	c.mu.Lock()
	for h, e := range c.entries {
		if e.tokenID == tokenID {
			delete(c.entries, h)
		}
	}
	c.mu.Unlock()
}
