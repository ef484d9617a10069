// Command rssmap prints what a running process's resident memory is made
// of: its peak (VmHWM) and current RSS split as the kernel counts them
// (RssAnon, RssFile), the resident part of each ELF section of its
// executable (from /proc/PID/pagemap: text, pclntab, type descriptors...),
// and its anonymous mappings. It is driven by bench/rss.sh; reading pagemap
// needs root (CAP_SYS_ADMIN), as on the benchmark machine.
//
//	rssmap PID
package main

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: rssmap PID")
		os.Exit(2)
	}
	pid := os.Args[1]
	status, err := os.ReadFile("/proc/" + pid + "/status")
	must(err)
	var fields []string
	for _, l := range strings.Split(string(status), "\n") {
		for _, k := range []string{"VmHWM", "VmRSS", "RssAnon", "RssFile"} {
			if strings.HasPrefix(l, k+":") {
				kib, _ := strconv.Atoi(strings.Fields(l)[1])
				fields = append(fields, fmt.Sprintf("%s %.1f MiB", k, float64(kib)/1024))
			}
		}
	}
	fmt.Println("  " + strings.Join(fields, ", "))

	exe, err := os.Readlink("/proc/" + pid + "/exe")
	must(err)
	f, err := elf.Open(exe)
	must(err)
	pm, err := os.Open("/proc/" + pid + "/pagemap")
	must(err)
	defer pm.Close()
	var total float64
	var parts []string
	for _, s := range f.Sections {
		if s.Addr == 0 || s.Size < 64<<10 || s.Flags&elf.SHF_ALLOC == 0 {
			continue
		}
		mib := resident(pm, s.Addr, s.Size)
		total += mib
		parts = append(parts, fmt.Sprintf("%s %.1f/%.1f", s.Name, mib, float64(s.Size)/(1<<20)))
	}
	fmt.Printf("  executable's sections, resident/size MiB: %s (%.1f MiB resident)\n", strings.Join(parts, ", "), total)

	// Anonymous mappings (the Go heap arenas, stacks, runtime metadata; .bss),
	// largest first as listed by smaps.
	sm, err := os.Open("/proc/" + pid + "/smaps")
	must(err)
	defer sm.Close()
	var anon []string
	var anonTotal float64
	sc := bufio.NewScanner(sm)
	head, isAnon := "", false
	for sc.Scan() {
		l := sc.Text()
		fs := strings.Fields(l)
		if len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":") {
			head, isAnon = fs[0], len(fs) == 5 || strings.HasPrefix(fs[5], "[anon") || fs[5] == "[heap]"
			if len(fs) > 5 {
				head += " " + strings.Join(fs[5:], " ")
			}
			continue
		}
		if isAnon && len(fs) >= 2 && fs[0] == "Rss:" {
			kib, _ := strconv.Atoi(fs[1])
			anonTotal += float64(kib) / 1024
			if kib >= 256 {
				anon = append(anon, fmt.Sprintf("%.1f (%s)", float64(kib)/1024, head))
			}
		}
	}
	fmt.Printf("  anonymous mappings ≥ 0.25 MiB resident: %s; all anonymous %.1f MiB\n", strings.Join(anon, ", "), anonTotal)
}

// resident is how many MiB of [addr, addr+size) are present in memory.
func resident(pm *os.File, addr, size uint64) float64 {
	first, last := addr/4096, (addr+size-1)/4096
	buf := make([]byte, (last-first+1)*8)
	if _, err := pm.ReadAt(buf, int64(first*8)); err != nil {
		must(err)
	}
	n := 0
	for i := 0; i+8 <= len(buf); i += 8 {
		if binary.LittleEndian.Uint64(buf[i:])>>63 == 1 {
			n++
		}
	}
	return float64(n) * 4096 / (1 << 20)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "rssmap:", err)
		os.Exit(1)
	}
}
