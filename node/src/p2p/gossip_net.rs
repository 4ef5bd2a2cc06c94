//! Gossip validation: blocks and transactions checked against the chain, uptime proofs and
//! votes by the accountability service, all on blocking threads, at most
//! [`VALIDATORS`](super::VALIDATORS) at once (the rest wait their turn; per-peer flood limits
//! bound how many wait); the verdict comes back to the event loop as `Internal::Validated`.

use super::*;

impl Loop {
    pub(super) fn gossip(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        let node = self.node.clone();
        let tx = self.tx.clone();
        let topic = message.topic.clone();
        let blocks = self.blocks_topic.hash();
        let data = message.data;
        if topic != blocks && topic != self.txs_topic.hash() {
            // Uptime proofs and votes: checked by the accountability service.
            let proofs = topic == IdentTopic::new(PROOFS_TOPIC).hash();
            let votes = topic == IdentTopic::new(VOTES_TOPIC).hash();
            if !proofs && !votes {
                self.swarm
                    .behaviour_mut()
                    .gossip
                    .report_message_validation_result(&id, &source, MessageAcceptance::Ignore);
                return;
            }
            let permit = self.validating.clone();
            spawn_validation(permit, move || {
                let (acceptance, ban) = if proofs {
                    crate::accountability::on_proof(&node, &data)
                } else {
                    crate::accountability::on_vote(&node, &data)
                };
                let _ = tx.send(Internal::Validated {
                    id,
                    source,
                    acceptance,
                    ban,
                    ahead: false,
                });
            });
            return;
        }
        let permit = self.validating.clone();
        spawn_validation(permit, move || {
            let (acceptance, ban, ahead) = if topic == blocks {
                match WireBlock::decode(&data) {
                    Err(e) => (
                        MessageAcceptance::Reject,
                        Some(format!("undecodable block gossip: {e}")),
                        false,
                    ),
                    Ok(b) => match node.submit_block(&b.blob, &b.txs, false) {
                        Ok(AddOutcome::AlreadyKnown) => (MessageAcceptance::Ignore, None, false),
                        Ok(_) => (MessageAcceptance::Accept, None, false),
                        Err(BlockError::UnknownParent(_)) => {
                            (MessageAcceptance::Ignore, None, true)
                        }
                        Err(e) if e.is_peer_fault() => (
                            MessageAcceptance::Reject,
                            Some(format!("invalid block: {e}")),
                            false,
                        ),
                        Err(_) => (MessageAcceptance::Ignore, None, false),
                    },
                }
            } else {
                // Transactions.
                match node.add_tx(data, false) {
                    Ok(_) => (MessageAcceptance::Accept, None, false),
                    Err(e) if e.is_peer_fault() => (
                        MessageAcceptance::Reject,
                        Some(format!("invalid transaction: {e}")),
                        false,
                    ),
                    Err(_) => (MessageAcceptance::Ignore, None, false),
                }
            };
            let _ = tx.send(Internal::Validated {
                id,
                source,
                acceptance,
                ban,
                ahead,
            });
        });
    }
}

/// Runs `check` on a blocking thread once one of the validation permits is free.
fn spawn_validation(permits: Arc<tokio::sync::Semaphore>, check: impl FnOnce() + Send + 'static) {
    tokio::spawn(async move {
        let Ok(_permit) = permits.acquire_owned().await else {
            return;
        };
        let _ = tokio::task::spawn_blocking(check).await;
    });
}
