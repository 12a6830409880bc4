//go:build tools

// Keeps kube-router's command in this module's requirements; build.sh builds
// github.com/cloudnativelabs/kube-router/v2/cmd/kube-router from here.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/pkg/cmd"
