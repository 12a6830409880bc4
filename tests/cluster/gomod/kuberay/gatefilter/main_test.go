package main

import (
	"reflect"
	"testing"
)

func TestFilterArgs(t *testing.T) {
	known := map[string]bool{"RayJobDeletionPolicy": true, "RayCronJob": true}
	cases := []struct {
		name        string
		args        []string
		want        []string
		wantDropped []string
	}{
		{
			"unknown false gates dropped",
			[]string{"--enable-metrics=true", "--feature-gates=RayJobDeletionPolicy=true,RayClusterMTLS=false,RayCronJob=false"},
			[]string{"--enable-metrics=true", "--feature-gates=RayJobDeletionPolicy=true,RayCronJob=false"},
			[]string{"RayClusterMTLS"},
		},
		{
			"unknown true gate kept for the operator to refuse",
			[]string{"--feature-gates", "RayClusterMTLS=true"},
			[]string{"--feature-gates", "RayClusterMTLS=true"},
			nil,
		},
		{
			"other arguments untouched",
			[]string{"--log-stdout-encoder", "json", "--qps=100"},
			[]string{"--log-stdout-encoder", "json", "--qps=100"},
			nil,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, dropped := filterArgs(c.args, known)
			if !reflect.DeepEqual(got, c.want) || !reflect.DeepEqual(dropped, c.wantDropped) {
				t.Fatalf("filterArgs(%v) = %v, %v; want %v, %v", c.args, got, dropped, c.want, c.wantDropped)
			}
		})
	}
}
