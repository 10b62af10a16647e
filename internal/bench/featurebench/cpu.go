package featurebench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100 on
// every Linux this runs on).
const clockTicks = 100

// pgCPU returns a function that reads the CPU seconds used so far by the
// PostgreSQL server of pool: its postmaster and the processes it forked
// that are alive (the pool's backends live as long as their connections,
// so a difference over a phase is that phase's database CPU). ok is false
// when the server is not local (its postmaster.pid is not readable).
func pgCPU(ctx context.Context, pool *pgxpool.Pool) (read func() float64, ok bool) {
	var dir string
	if err := pool.QueryRow(ctx, `SELECT current_setting('data_directory')`).Scan(&dir); err != nil {
		return nil, false
	}
	raw, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return nil, false
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	pm, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return nil, false
	}
	return func() float64 { return treeCPU(pm) }, true
}

// treeCPU sums the CPU seconds of pid and its direct children.
func treeCPU(pid int) float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total float64
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, secs, err := procStat(p)
		if err == nil && (p == pid || ppid == pid) {
			total += secs
		}
	}
	return total
}

// procStat reads a process's parent and CPU seconds (user + system).
func procStat(pid int) (ppid int, secs float64, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name is in parentheses and may hold spaces: the fields
	// after it start at the last ')'.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is the state, f[1] ppid, f[11] utime, f[12] stime.
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, err
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: cpu times", pid)
	}
	return ppid, (ut + st) / clockTicks, nil
}
