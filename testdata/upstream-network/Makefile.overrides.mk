# Overlay on ../upstream: building pilot-discovery first runs
# common/scripts/network_probe.sh, which needs the network (a Go module proxy).
NETWORK_PROBE_GOPROXY ?= https://goproxy.example.com
NETWORK_PROBE_MODULE ?= rsc.io/quote@v1.5.2
export NETWORK_PROBE_GOPROXY NETWORK_PROBE_MODULE
PILOT_DISCOVERY_PRE := common/scripts/network_probe.sh
