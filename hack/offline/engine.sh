#!/bin/bash
# Phase 1: Debian packages and the Docker engine, with the capability-fixing runtime as default.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

packages=(docker.io iptables jq debootstrap gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages: present"
fi

install -m 0755 "$OFFLINE_DIR/runc-capfix" /usr/local/bin/runc-capfix
daemon_json=/etc/docker/daemon.json
mkdir -p /etc/docker
[[ -s $daemon_json ]] || echo '{}' >"$daemon_json"
want='.runtimes["runc-capfix"].path == "/usr/local/bin/runc-capfix" and .["default-runtime"] == "runc-capfix"'
if ! jq -e "$want" "$daemon_json" >/dev/null; then
  log "registering runc-capfix as the default runtime in $daemon_json"
  tmp=$(mktemp)
  jq '.runtimes["runc-capfix"] = {"path": "/usr/local/bin/runc-capfix"} | .["default-runtime"] = "runc-capfix"' \
    "$daemon_json" >"$tmp"
  mv "$tmp" "$daemon_json"
fi

start_dockerd() {
  # A pid file left by a dockerd that is gone would stop the new one.
  if [[ -f /var/run/docker.pid ]] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  log "starting dockerd (log: /var/log/dockerd.log)"
  setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
  wait_for "the Docker engine to answer" 60 docker info
}

if ! docker info >/dev/null 2>&1; then
  start_dockerd
elif [[ "$(docker info -f '{{.DefaultRuntime}}')" != runc-capfix ]]; then
  # Running without the wrapper: restart only when nothing else is running on it.
  if [[ -n "$(docker ps -q)" ]]; then
    die "dockerd runs without runc-capfix and has running containers; restart it yourself once they are done"
  fi
  log "dockerd runs without runc-capfix and has no running containers: restarting it"
  pid=$(cat /var/run/docker.pid)
  kill "$pid"
  wait_for "dockerd (pid $pid) to exit" 60 bash -c "! kill -0 $pid"
  start_dockerd
fi
log "Docker engine $(docker version -f '{{.Server.Version}}'), default runtime $(docker info -f '{{.DefaultRuntime}}')"
