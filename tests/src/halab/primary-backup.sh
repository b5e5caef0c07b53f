#!/bin/sh
#
# keepalived's notify script for the HA lab's sync group: Debian's
# /usr/share/doc/conntrackd/examples/sync/primary-backup.sh with this gateway's paths, and two
# changes: it logs to a file of the lab (no syslog in a namespace) with the time of each step,
# and "backup" does not start a conntrackd of its own when none answers (the lab runs conntrackd
# itself and stops it at the end; one started here would outlive the lab).

CONNTRACKD_BIN=@CONNTRACKD@
CONNTRACKD_LOCK=@LOCK@
CONNTRACKD_CONFIG=@CONFIG@
LOG=@LOG@

log() {
    echo "$(date +%s.%N) $*" >> "$LOG"
}

run() {
    $CONNTRACKD_BIN -C $CONNTRACKD_CONFIG "$@"
    if [ $? -eq 1 ]
    then
        log "ERROR: failed to invoke conntrackd $*"
    fi
}

log "state $1"
case "$1" in
  primary)
    # commit the external cache into the kernel table
    run -c
    # flush the internal and the external caches
    run -f
    # resynchronize my internal cache to the kernel table
    run -R
    # send a bulk update to backups
    run -B
    ;;
  backup)
    # is conntrackd running? request some statistics to check it
    $CONNTRACKD_BIN -C $CONNTRACKD_CONFIG -s > /dev/null
    if [ $? -eq 1 ]
    then
        log "ERROR: conntrackd does not answer (lock file $CONNTRACKD_LOCK)"
        exit 1
    fi
    # shorten kernel conntrack timers to remove the zombie entries
    run -t
    # request resynchronization with master firewall replica (if any)
    run -n
    ;;
  fault)
    # shorten kernel conntrack timers to remove the zombie entries
    run -t
    ;;
  *)
    log "ERROR: unknown state transition $1"
    echo "Usage: primary-backup.sh {primary|backup|fault}"
    exit 1
    ;;
esac
log "done $1"
exit 0
