// Command coredns is CoreDNS with only the plugins the test cluster's Corefile
// uses, so the build skips the cloud providers' SDKs. No forward (and so no
// loop) plugin: the cluster's DNS never asks a server off the machine. The directive order is
// the upstream order (core/dnsserver/zdirectives.go) restricted to these.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	dnsserver.Directives = []string{
		"reload", "ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes",
	}
}

func main() {
	coremain.Run()
}
