//! Certificate chain ordering for `pkcs12cert`: leaf, then intermediate(s), then root, when the
//! certificates form exactly one chain; otherwise their order is kept. As ESO's `pkcs12certPass`
//! (`runtime/template/v2/pkcs12.go`) with `fetchCertChains` (`runtime/template/v2/pem_chain.go`),
//! which falls back to the unordered certificates; certificates are linked by issuer and subject
//! names and by key identifiers where both sides have them (RFC 5280 4.2.1.1 and 4.2.1.2).

use der::{Decode, Encode};

pub(super) type Cert = x509_cert::certificate::CertificateInner<x509_cert::certificate::Raw>;

struct ChainNode {
    issuer: Vec<u8>,
    subject: Vec<u8>,
    authority_key_id: Option<Vec<u8>>,
    subject_key_id: Option<Vec<u8>>,
}

fn chain_node(der: &[u8]) -> Option<ChainNode> {
    use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};
    let cert = Cert::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    let authority_key_id = tbs
        .get_extension::<AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, aki)| aki.key_identifier)
        .map(|id| id.as_bytes().to_vec());
    let subject_key_id = tbs.get_extension::<SubjectKeyIdentifier>().ok().flatten().map(|(_, ski)| ski.0.as_bytes().to_vec());
    Some(ChainNode { issuer: tbs.issuer().to_der().ok()?, subject: tbs.subject().to_der().ok()?, authority_key_id, subject_key_id })
}

/// Orders certificates leaf -> intermediate(s) -> root when they form one chain (by issuer and
/// subject names, and key identifiers where both sides have them); otherwise keeps their order.
pub(super) fn order_chain(certs: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let Some(nodes) = certs.iter().map(|c| chain_node(c)).collect::<Option<Vec<_>>>() else {
        return certs;
    };
    let issued_by = |child: &ChainNode, parent: &ChainNode| {
        child.issuer == parent.subject
            && match (&child.authority_key_id, &parent.subject_key_id) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
    };
    let parent: Vec<Option<usize>> = nodes
        .iter()
        .enumerate()
        .map(|(i, child)| {
            if child.issuer == child.subject {
                return None; // self-issued: a root
            }
            (0..nodes.len()).find(|&j| j != i && issued_by(child, &nodes[j]))
        })
        .collect();
    let is_parent: Vec<bool> = (0..nodes.len()).map(|j| parent.contains(&Some(j))).collect();
    let leaves: Vec<usize> = (0..nodes.len()).filter(|&i| !is_parent[i]).collect();
    let [leaf] = leaves[..] else {
        return certs;
    };
    let mut order = vec![leaf];
    let mut at = leaf;
    while let Some(next) = parent[at] {
        if order.contains(&next) {
            return certs; // a cycle
        }
        order.push(next);
        at = next;
    }
    if order.len() != certs.len() {
        return certs; // not one chain
    }
    order.into_iter().map(|i| certs[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_ordered_only_when_unambiguous() {
        // Without parseable certificates the order is kept.
        let certs = vec![b"a".to_vec(), b"b".to_vec()];
        assert_eq!(order_chain(certs.clone()), certs);
    }
}
