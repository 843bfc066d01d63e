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
	// revoked holds the tokens revoked here in the last tokenCacheTTL (by
	// wall clock), so an authentication that read a token just before its
	// revocation committed cannot put it back.
	revoked map[int64]time.Time
}

type tokenEntry struct {
	p         Principal
	tokenID   int64
	expiresAt *time.Time
	until     time.Time
}

func newTokenCache() *tokenCache {
	return &tokenCache{entries: map[[32]byte]tokenEntry{}, revoked: map[int64]time.Time{}}
}

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
	defer c.mu.Unlock()
	if at, ok := c.revoked[e.tokenID]; ok && time.Since(at) < 2*tokenCacheTTL {
		return
	}
	if len(c.entries) >= tokenCacheMax {
		c.entries = map[[32]byte]tokenEntry{}
	}
	c.entries[hash] = e
}

// forget drops the entries of token id (its revocation) and keeps it out
// of the cache for a while.
func (c *tokenCache) forget(tokenID int64) {
	c.mu.Lock()
	now := time.Now()
	for id, at := range c.revoked {
		if now.Sub(at) >= 2*tokenCacheTTL {
			delete(c.revoked, id)
		}
	}
	c.revoked[tokenID] = now
	for h, e := range c.entries {
		if e.tokenID == tokenID {
			delete(c.entries, h)
		}
	}
	c.mu.Unlock()
}
