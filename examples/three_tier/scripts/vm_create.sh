#!/bin/sh
# Creates the VM: a folder, and its address as a runtime property.
set -e
dir="${RHAIFLOW_EXAMPLE_ROOT:-/tmp/rhaiflow-three-tier}/$RHAIFLOW_INSTANCE"
mkdir -p "$dir"
echo "$RHAIFLOW_PROPERTIES" > "$dir/properties.json"
echo "lifecycle.create" >> "$dir/log"
n="${RHAIFLOW_INSTANCE##*_}"
printf '{"ip": "10.0.0.%s"}' "$n" > "$RHAIFLOW_RUNTIME_PROPERTIES"
echo "created $RHAIFLOW_INSTANCE"
