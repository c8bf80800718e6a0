// Package packaging holds no code: its tests check what `make cross` and
// `make deb` ship, from the repository root. Two builds of one commit give
// the same bytes; `agent version` names the version, commit, date and
// platform; systemd/agent.service passes `systemd-analyze verify` and keeps
// its `systemd-analyze security` exposure under 3.0; the .deb holds the
// binary, the unit, a conffile and maintainer scripts that create the
// service user and start nothing. docs/packaging.md explains the choices.
package packaging
