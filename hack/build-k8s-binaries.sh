#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, etcd and kubectl from Go modules into a
# version-keyed cache directory, reuses that directory when it is complete, and builds only
# the binaries it lacks otherwise (a cache made before kubectl was added gains just kubectl).
#
#   hack/build-k8s-binaries.sh            -> prints the directory holding the binaries
#   hack/build-k8s-binaries.sh --check    -> same, but exits 1 instead of building
#
# Kubernetes' own go.mod requires its staging modules at v0.0.0 and replaces them with
# ./staging paths; replace directives only apply in the main module, so a throwaway
# module replaces each staging module with its published v0.X.Y tag.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.33.13}"
CACHE_ROOT="${SMART_RESUME_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smart-resume-operator}"
OUT="$CACHE_ROOT/k8s-$K8S_VERSION"
BINARIES=(kube-apiserver kube-controller-manager etcd kubectl)

die() { echo "build-k8s-binaries: $*" >&2; exit 1; }

missing=()
for b in "${BINARIES[@]}"; do [[ -x "$OUT/$b" ]] || missing+=("$b"); done
wanted() { [[ " ${missing[*]} " == *" $1 "* ]]; }

if (( ${#missing[@]} == 0 )); then echo "$OUT"; exit 0; fi
[[ "${1:-}" == "--check" ]] && exit 1

command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH and KUBEBUILDER_ASSETS is not set.
Install Go >= 1.24 (https://go.dev/dl or your distribution's golang package), or set
KUBEBUILDER_ASSETS to a folder holding kube-apiserver, kube-controller-manager and etcd."

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#v1.}"
work="$(mktemp -d "${TMPDIR:-/tmp}/smart-resume-k8s-build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)

{
  echo "module example.invalid/k8s-testbins"
  echo
  echo "go 1.24.0"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  for m in "${staging[@]}"; do echo "	k8s.io/$m => k8s.io/$m $staging_version"; done
  echo ")"
  echo
  echo "tool ("
  echo "	k8s.io/kubernetes/cmd/kube-apiserver"
  echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
  echo "	k8s.io/kubernetes/cmd/kubectl"
  echo "	go.etcd.io/etcd/server/v3"
  echo ")"
} > "$work/go.mod"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
done

cd "$work"
echo "build-k8s-binaries: resolving modules for Kubernetes $K8S_VERSION (first run downloads ~1 GB)" >&2
go mod tidy >&2 || die "go mod tidy failed for Kubernetes $K8S_VERSION (see above); is the Go module proxy reachable?"
mkdir -p "$work/bin"
k8s_packages=()
for b in kube-apiserver kube-controller-manager kubectl; do
  wanted "$b" && k8s_packages+=("k8s.io/kubernetes/cmd/$b")
done
if (( ${#k8s_packages[@]} )); then
  echo "build-k8s-binaries: compiling ${k8s_packages[*]##*/}" >&2
  go build -tags=selinux,notest,grpcnotrace -ldflags "-s -w$version_flags" -o "$work/bin/" \
    "${k8s_packages[@]}" >&2 \
    || die "building ${k8s_packages[*]##*/} failed (see the compiler output above)"
fi
if wanted etcd; then
  echo "build-k8s-binaries: compiling etcd" >&2
  go build -ldflags "-s -w" -o "$work/bin/etcd" go.etcd.io/etcd/server/v3 >&2 \
    || die "building etcd failed (see the compiler output above)"
fi

mkdir -p "$OUT"
for b in "${missing[@]}"; do
  cp "$work/bin/$b" "$OUT/$b.tmp" && mv "$OUT/$b.tmp" "$OUT/$b"
done
echo "$OUT"
