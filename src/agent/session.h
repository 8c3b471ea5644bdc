/*
 * One host connection: the agent side of the protocol in
 * docs/design/protocol.md. Runs every exec the host asks for, moves their
 * streams under flow control, and ends when the host closes the connection,
 * breaks the protocol or asks for a shutdown. Execs still running when a
 * connection ends are killed: their output would have nowhere to go.
 */
#ifndef MSB_AGENT_SESSION_H
#define MSB_AGENT_SESSION_H

/* Serves the connected stream @conn (made non-blocking here; closed by the
 * caller). @sigfd is a signalfd for SIGCHLD, which the caller blocked; every
 * child that ends is reaped (as PID 1 this includes orphans). Returns 1 when
 * the host asked for a shutdown, 0 when the connection ended, or a negative
 * errno when the agent itself failed (out of memory), or 2 when the host asked
 * for a snapshot (the connection is then over and nothing runs). */
struct agent_root;

/* @root: the image root (root.h), owned by the caller, shared by every
 * connection: execs run chrooted into it once MOUNT_ROOT mounted it. */
int session_run(int conn, int sigfd, struct agent_root *root);

/* Reaps every ended child without waiting; for use between connections. */
void session_reap(int sigfd);

#endif
