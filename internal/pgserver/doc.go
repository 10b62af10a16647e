// Package pgserver initialises, starts and stops a private PostgreSQL cluster
// from the system's PostgreSQL binaries. It is Bulwark's embedded default
// (`bulwark serve` with no --postgres) and the engine of the test harness.
//
// initdb refuses to run as root, so when the process is root the cluster is
// created and run as an unprivileged system user (default "postgres") via
// SysProcAttr credentials; the data directory is chowned to that user. That
// user must be able to reach the data directory: Start checks it (as that
// user) and fails with instructions otherwise. It never changes the
// permissions of an existing directory; parents it creates itself are 0711.
//
// The cluster is configured for logical replication (wal_level=logical) so
// the change stream can use it, listens on 127.0.0.1 on a port chosen at
// initialisation and recorded in postgresql.conf, and trusts local
// connections: it is private to this machine.
//
// Lifetime. The process that starts the server owns it: the postmaster is
// its direct child with a parent-death signal (postmaster.go explains why
// that is reliable from Go), so it shuts down when its owner exits, even by
// SIGKILL, and the owner's Stop stops it. The owner holds an exclusive
// flock on <data dir>/bulwark.owner while it runs the server; the kernel
// releases it when the owner dies. Start on a directory whose lock another
// live process holds uses that server as a guest (Owned is false; Stop
// leaves it). Holding the lock, a server still running is an orphan (its
// owner was killed and it is still shutting down, or an older build
// daemonised it through pg_ctl): it is stopped and replaced by an owned
// child. StopDir stops an orphan and refuses a live owner's server (`make
// clean`). A postmaster.pid naming a dead process or one that is not
// postgres is stale and removed.
package pgserver
