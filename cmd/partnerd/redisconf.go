package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// redisConfig is REDIS_URL parsed: one server (redis://, rediss://) or a
// Redis Cluster (redis+cluster://host1:7000,host2:7001,...; rediss+cluster://
// for TLS), for the live fan-out, the rate limiter and the task queues alike.
type redisConfig struct {
	// Single is set for one server, Cluster for a cluster.
	Single  *redis.Options
	Cluster *redis.ClusterOptions
}

// parseRedisURL parses REDIS_URL. A cluster URL lists seed nodes (any of the
// cluster's masters; the client learns the rest), takes user and password as
// a single server's does, and has no database number: a cluster has only 0.
func parseRedisURL(raw string) (redisConfig, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return redisConfig{}, fmt.Errorf("not a URL")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return redisConfig{}, err
		}
		return redisConfig{Single: o}, nil
	case "redis+cluster", "rediss+cluster":
	default:
		return redisConfig{}, fmt.Errorf("scheme %q is not redis, rediss, redis+cluster or rediss+cluster", scheme)
	}
	// redis+cluster://[user:pass@]h1:p1,h2:p2[/0][?query] → go-redis's
	// cluster URL, redis://[user:pass@]h1:p1?addr=h2:p2&query.
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	// The password may hold an '@': the hosts follow the last one.
	userinfo, hosts := "", authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		userinfo, hosts = authority[:i], authority[i+1:]
	}
	if path != "" && path != "0" {
		return redisConfig{}, fmt.Errorf("a cluster has only database 0, not %q", path)
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(h); err != nil || !validPort(port) {
			return redisConfig{}, fmt.Errorf("cluster node %q is not host:port", h)
		}
		addrs = append(addrs, h)
	}
	if len(addrs) == 0 {
		return redisConfig{}, fmt.Errorf("no cluster node in the URL")
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return redisConfig{}, fmt.Errorf("query: %w", err)
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	u := strings.TrimSuffix(scheme, "+cluster") + "://"
	if userinfo != "" {
		u += userinfo + "@"
	}
	u += addrs[0]
	if enc := q.Encode(); enc != "" {
		u += "?" + enc
	}
	o, err := redis.ParseClusterURL(u)
	if err != nil {
		return redisConfig{}, err
	}
	return redisConfig{Cluster: o}, nil
}

// setTimeouts bounds every dial, read and write by d.
func (r redisConfig) setTimeouts(d time.Duration) {
	if r.Single != nil {
		r.Single.DialTimeout, r.Single.ReadTimeout, r.Single.WriteTimeout = d, d, d
	}
	if r.Cluster != nil {
		r.Cluster.DialTimeout, r.Cluster.ReadTimeout, r.Cluster.WriteTimeout = d, d, d
	}
}

// Client opens a client of the server or the cluster.
func (r redisConfig) Client() redis.UniversalClient {
	if r.Cluster != nil {
		return redis.NewClusterClient(r.Cluster)
	}
	return redis.NewClient(r.Single)
}

// Queue is the connection option of asynq (the task queues) on the same
// server or cluster. asynq keeps each queue's keys in one hash slot
// ("asynq:{<queue>}:…"), so its scripts work on a cluster.
func (r redisConfig) Queue() asynq.RedisConnOpt {
	if c := r.Cluster; c != nil {
		return asynq.RedisClusterClientOpt{Addrs: c.Addrs, MaxRedirects: c.MaxRedirects, Username: c.Username, Password: c.Password,
			DialTimeout: c.DialTimeout, ReadTimeout: c.ReadTimeout, WriteTimeout: c.WriteTimeout, TLSConfig: c.TLSConfig}
	}
	o := r.Single
	return asynq.RedisClientOpt{Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, PoolSize: o.PoolSize, TLSConfig: o.TLSConfig}
}
