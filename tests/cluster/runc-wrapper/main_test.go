package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSpecFiles(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"create with bundle", []string{"--root", "/r", "--log", "/l", "create", "--bundle", "/b", "id"}, []string{"/b/config.json"}},
		{"run with short bundle", []string{"run", "-b", "/b", "id"}, []string{"/b/config.json"}},
		{"bundle with equals", []string{"create", "--bundle=/b", "id"}, []string{"/b/config.json"}},
		{"exec process file", []string{"--root", "/r", "exec", "--process", "/p.json", "id"}, []string{"/p.json"}},
		{"start touches nothing", []string{"--root", "/r", "start", "id"}, nil},
		{"delete touches nothing", []string{"delete", "--force", "id"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := specFiles(c.args); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("specFiles(%v) = %v, want %v", c.args, got, c.want)
			}
		})
	}
}

func TestAdaptFileDropsCapabilityAndRaisesOOMScore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	in := `{"ociVersion":"1.0.2","process":{"oomScoreAdj":-998,"capabilities":{
		"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE"],
		"permitted":["CAP_CHOWN"]}},"root":{"path":"rootfs"}}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := adaptFile(path); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Process struct {
			OOMScoreAdj  int                 `json:"oomScoreAdj"`
			Capabilities map[string][]string `json:"capabilities"`
		} `json:"process"`
		Root map[string]string `json:"root"`
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Process.OOMScoreAdj != 0 {
		t.Errorf("oomScoreAdj = %d, want 0", doc.Process.OOMScoreAdj)
	}
	want := map[string][]string{"bounding": {"CAP_CHOWN"}, "effective": {}, "permitted": {"CAP_CHOWN"}}
	if !reflect.DeepEqual(doc.Process.Capabilities, want) {
		t.Errorf("capabilities = %v, want %v", doc.Process.Capabilities, want)
	}
	if doc.Root["path"] != "rootfs" {
		t.Errorf("unrelated field lost: root = %v", doc.Root)
	}
}

func TestAdaptFileLeavesPositiveOOMScoreAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "process.json")
	in := `{"oomScoreAdj":1000,"capabilities":{"bounding":["CAP_CHOWN"]}}`
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := adaptFile(path); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != in {
		t.Errorf("file rewritten without need: %s", data)
	}
}
