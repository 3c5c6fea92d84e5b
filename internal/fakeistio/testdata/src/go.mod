module istio.io/istio

go 1.22
