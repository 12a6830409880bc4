# Certificate helpers for up.sh; sourced. One CA signs everything; keys never leave STATE_DIR.

# make_ca DIR
make_ca() {
  local d="$1"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=aks-ray-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
}

# make_cert DIR NAME SUBJECT USAGE [SAN]: USAGE is serverAuth, clientAuth or both.
make_cert() {
  local d="$1" name="$2" subject="$3" usage="$4" san="${5:-}"
  local ext="$d/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    case "$usage" in
      serverAuth) echo "extendedKeyUsage=serverAuth" ;;
      clientAuth) echo "extendedKeyUsage=clientAuth" ;;
      both) echo "extendedKeyUsage=serverAuth,clientAuth" ;;
    esac
    if [[ -n $san ]]; then echo "subjectAltName=$san"; fi
  } >"$ext"
  openssl req -newkey rsa:2048 -nodes -subj "$subject" \
    -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
    -CAcreateserial -days 30 -extfile "$ext" -out "$d/$name.crt" 2>/dev/null
  rm -f "$d/$name.csr" "$ext"
}

# write_kubeconfig FILE SERVER CERTDIR NAME: a kubeconfig with NAME's client certificate embedded.
write_kubeconfig() {
  local file="$1" server="$2" d="$3" name="$4"
  cat >"$file" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: aks-ray-local
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 "$d/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$d/$name.crt")
    client-key-data: $(base64 -w0 "$d/$name.key")
contexts:
- name: aks-ray-local
  context:
    cluster: aks-ray-local
    user: $name
current-context: aks-ray-local
KUBECONFIG
  chmod 600 "$file"
}

# make_all_certs DIR: every certificate and kubeconfig the control plane and node need.
make_all_certs() {
  local d="$1" server="https://$NODE_IP:6443"
  make_ca "$d"
  make_cert "$d" apiserver "/CN=kube-apiserver" serverAuth \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP"
  make_cert "$d" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  make_cert "$d" admin "/O=system:masters/CN=aks-ray-admin" clientAuth
  make_cert "$d" controller-manager "/CN=system:kube-controller-manager" clientAuth
  make_cert "$d" scheduler "/CN=system:kube-scheduler" clientAuth
  make_cert "$d" kube-proxy "/CN=system:kube-proxy" clientAuth
  make_cert "$d" kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" both "DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
  openssl genrsa -out "$d/service-account.key" 2048 2>/dev/null
  openssl rsa -in "$d/service-account.key" -pubout -out "$d/service-account.pub" 2>/dev/null
  local n
  for n in admin controller-manager scheduler kube-proxy kubelet; do
    write_kubeconfig "$d/$n.kubeconfig" "$server" "$d" "$n"
  done
}
