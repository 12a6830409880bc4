// Command runc-wrapper runs Debian's runc after adapting an OCI bundle to this
// sandbox, whose capability bounding set lacks CAP_SYS_RESOURCE:
//
//   - CAP_SYS_RESOURCE is dropped from every capability set, since asking for
//     a capability outside the bounding set fails with "unable to apply caps";
//   - a negative process.oomScoreAdj is raised to 0, since lowering it needs
//     CAP_SYS_RESOURCE (the kubelet asks -998 for pause containers).
//
// containerd calls it in place of runc (BinaryName in its config); every
// argument is passed on unchanged. The real runc is RUNC_WRAPPER_RUNC or
// /usr/sbin/runc.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const droppedCapability = "CAP_SYS_RESOURCE"

func main() {
	real := os.Getenv("RUNC_WRAPPER_RUNC")
	if real == "" {
		real = "/usr/sbin/runc"
	}
	for _, file := range specFiles(os.Args[1:]) {
		if err := adaptFile(file); err != nil {
			fmt.Fprintf(os.Stderr, "runc-wrapper: %s: %v\n", file, err)
			os.Exit(1)
		}
	}
	argv := append([]string{real}, os.Args[1:]...)
	err := syscall.Exec(real, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "runc-wrapper: exec %s: %v\n", real, err)
	os.Exit(1)
}

// specFiles returns the JSON files that describe a process about to start:
// the bundle's config.json for create and run, the --process file for exec.
func specFiles(args []string) []string {
	command := ""
	bundle := "."
	var files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "--bundle" || a == "-b":
			bundle = next()
		case len(a) > 9 && a[:9] == "--bundle=":
			bundle = a[9:]
		case a == "--process" || a == "-p":
			files = append(files, next())
		case len(a) > 10 && a[:10] == "--process=":
			files = append(files, a[10:])
		case command == "" && len(a) > 0 && a[0] != '-':
			command = a
		case command == "" && globalFlagTakesValue(a):
			next()
		}
	}
	if command == "create" || command == "run" {
		files = append(files, filepath.Join(bundle, "config.json"))
	}
	if command != "exec" && command != "create" && command != "run" {
		return nil
	}
	return files
}

// globalFlagTakesValue tells whether a runc global flag given as "--flag value"
// consumes the next argument, so that value is not mistaken for the command.
func globalFlagTakesValue(a string) bool {
	switch a {
	case "--root", "--log", "--log-format", "--criu", "--rootless":
		return true
	}
	return false
}

func adaptFile(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		return err
	}
	process := doc
	if p, ok := doc["process"].(map[string]any); ok {
		process = p // config.json nests the process; an exec --process file is one.
	}
	if !adaptProcess(process) {
		return nil
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, info.Mode().Perm())
}

// adaptProcess edits an OCI process object in place and reports whether it changed.
func adaptProcess(process map[string]any) bool {
	changed := false
	if caps, ok := process["capabilities"].(map[string]any); ok {
		for set, list := range caps {
			items, ok := list.([]any)
			if !ok {
				continue
			}
			kept := items[:0:0]
			for _, c := range items {
				if c == droppedCapability {
					changed = true
					continue
				}
				kept = append(kept, c)
			}
			caps[set] = kept
		}
	}
	if adj, ok := process["oomScoreAdj"].(float64); ok && adj < 0 {
		process["oomScoreAdj"] = 0
		changed = true
	}
	return changed
}
