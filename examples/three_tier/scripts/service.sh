#!/bin/sh
# One lifecycle step of a service: recorded in its folder; `start` also records a pid file.
set -e
dir="${RHAIFLOW_EXAMPLE_ROOT:-/tmp/rhaiflow-three-tier}/$RHAIFLOW_INSTANCE"
mkdir -p "$dir"
echo "$RHAIFLOW_OPERATION" >> "$dir/log"
case "$RHAIFLOW_OPERATION" in
  lifecycle.start) echo $$ > "$dir/pid" ;;
  lifecycle.stop) rm -f "$dir/pid" ;;
esac
echo "$RHAIFLOW_OPERATION $RHAIFLOW_INSTANCE"
