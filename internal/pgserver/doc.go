// Package pgserver initialises, starts and stops a private PostgreSQL cluster
// from the system's PostgreSQL binaries. It is Bulwark's embedded default
// (`bulwark serve` with no --postgres) and the engine of the test harness.
//
// initdb refuses to run as root, so when the process is root the cluster is
// created and run as an unprivileged system user (default "postgres") via
// SysProcAttr credentials; the data directory is chowned to that user.
//
// The cluster is configured for logical replication (wal_level=logical) so
// the change stream can use it, listens on 127.0.0.1 on a port chosen at
// initialisation and recorded in postgresql.conf, and trusts local
// connections: it is private to this machine.
//
// A cluster left running by a killed process (SIGKILL never lets us stop it)
// is detected through postmaster.pid and adopted rather than started twice.
package pgserver
