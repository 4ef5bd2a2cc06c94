//! Gossip validation: blocks and transactions checked against the chain, uptime proofs and
//! votes by the accountability service, all on blocking threads, at most
//! [`VALIDATORS`](super::VALIDATORS) at once (the rest wait their turn; per-peer flood limits
//! bound how many wait); the verdict comes back to the event loop as `Internal::Validated`.

use super::*;

impl Loop {
    /// Reports a validation verdict to the gossip behaviour the message came through.
    pub(super) fn report_validation(
        &mut self,
        anonymous: bool,
        id: &MessageId,
        source: &PeerId,
        acceptance: MessageAcceptance,
    ) {
        let b = self.swarm.behaviour_mut();
        let g = if anonymous {
            &mut b.txgossip
        } else {
            &mut b.gossip
        };
        g.report_message_validation_result(id, source, acceptance);
    }

    /// A gossip message (`anonymous`: from the transaction gossip): a flood bans its relay,
    /// anything else is validated.
    pub(super) fn gossip_message(
        &mut self,
        anonymous: bool,
        source: PeerId,
        id: MessageId,
        message: gossipsub::Message,
    ) {
        if self.flooding(source) {
            self.report_validation(anonymous, &id, &source, MessageAcceptance::Ignore);
            self.ban(source, "gossip flood");
            return;
        }
        // Each topic travels on one of the two: anything else is not ours to judge.
        if anonymous != (message.topic == self.txs_topic.hash()) {
            self.report_validation(anonymous, &id, &source, MessageAcceptance::Ignore);
            return;
        }
        self.gossip(anonymous, source, id, message);
    }

    fn gossip(
        &mut self,
        anonymous: bool,
        source: PeerId,
        id: MessageId,
        message: gossipsub::Message,
    ) {
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
                self.report_validation(anonymous, &id, &source, MessageAcceptance::Ignore);
                return;
            }
            let permit = self.validating.clone();
            spawn_validation(permit, move || {
                let services = node.net.get().and_then(|n| n.services().cloned());
                let (acceptance, ban) = match services {
                    Some(s) if proofs => (s.on_proof)(&node, &data),
                    Some(s) => (s.on_vote)(&node, &data),
                    None => (MessageAcceptance::Ignore, None),
                };
                let _ = tx.send(Internal::Validated {
                    id,
                    source,
                    acceptance,
                    ban,
                    ahead: false,
                    anonymous,
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
                anonymous,
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
