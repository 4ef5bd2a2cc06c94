//! The sync protocol `/sispop/sync/1`: serving our blocks and tip to peers, and judging the
//! batches peers serve us.

use super::*;

/// The answer to a peer's sync request (on a blocking thread).
fn answer_sync(node: &Node, req: Request) -> Response {
    match req {
        Request::Tip => {
            let st = node.lock();
            let (h, hash) = st.chain.tip();
            let cumulative_difficulty = st.chain.tip_meta().cumulative_difficulty;
            if node.faults.lie_tip {
                return Response::Tip {
                    height: h.0.saturating_add(1_000_000),
                    hash: hash.0,
                    cumulative_difficulty: cumulative_difficulty.saturating_mul(1000),
                };
            }
            Response::Tip {
                height: h.0,
                hash: hash.0,
                cumulative_difficulty,
            }
        }
        Request::Blocks { from, count } => {
            let mut blocks = Vec::new();
            let mut bytes = 0usize;
            for h in from..from.saturating_add(u64::from(count.min(MAX_BLOCKS_PER_RESPONSE))) {
                // The lock is taken per block, not for the whole batch.
                let st = node.lock();
                let Ok(Some((_, _, blob))) = st.chain.block_at(Height(h)) else {
                    break;
                };
                let Ok(block) = sispop_chain::Block::from_bytes(&blob) else {
                    break;
                };
                let txs: Vec<Vec<u8>> = block
                    .tx_hashes
                    .iter()
                    .filter_map(|t| st.chain.store().tx(t).ok().flatten().map(|x| x.2))
                    .collect();
                bytes += blob.len() + txs.iter().map(Vec::len).sum::<usize>();
                blocks.push(WireBlock { blob, txs });
                if bytes > (MAX_RESPONSE_BYTES as usize) / 2 {
                    break;
                }
            }
            Response::Blocks(blocks)
        }
        Request::SnPing { .. } => Response::Refused("SN pings go over /sispop/sn/1".into()),
        // Answered on the event loop, which holds the address book.
        Request::Peers => Response::Peers(Vec::new()),
        Request::Locator(hashes) => {
            let st = node.lock();
            let store = st.chain.store();
            let main_height = |h: &[u8; 32]| {
                let meta = store.block_meta(&sispop_chain::BlockHash(*h)).ok()??;
                (store.hash_at(meta.height).ok()?? == sispop_chain::BlockHash(*h))
                    .then_some(meta.height.0)
            };
            match sync_policy::fork_point(&hashes, main_height) {
                Some((height, hash)) => Response::ForkPoint { height, hash },
                None => Response::Refused(sync_policy::NO_COMMON_BLOCK.into()),
            }
        }
    }
}

impl Loop {
    /// Whether `peer` has made more sync requests than its budget in this window.
    fn sync_over_budget(&mut self, peer: PeerId) -> bool {
        over_budget(&mut self.sync_asked, peer, SYNC_REQUEST_LIMIT)
    }

    pub(super) fn serve_sync(
        &mut self,
        peer: PeerId,
        request: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) {
        if request == OVERSIZED_REQUEST {
            self.ban(peer, "oversized sync request");
            return;
        }
        let refuse = |this: &mut Self, channel, why: &str| {
            let _ = this
                .swarm
                .behaviour_mut()
                .sync
                .send_response(channel, Response::Refused(why.into()).to_bytes());
        };
        if request.is_empty() {
            // What a peer leaves when it gave up on a request before sending it (while we were
            // stalled, say): no answer is awaited and nobody is to blame.
            debug!(%peer, "empty sync request ignored");
            return;
        }
        let req = match Request::decode(request) {
            Err(e) => {
                refuse(self, channel, &e.to_string());
                self.ban(peer, "malformed sync request");
                return;
            }
            Ok(r) => r,
        };
        if self.sync_over_budget(peer) {
            refuse(self, channel, "too many sync requests; slow down");
            return;
        }
        // Known peers come from the address book, here.
        if let Request::Peers = req {
            let data = self.peers_to_share().to_bytes();
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, data);
            return;
        }
        // A tip is one lookup: answered here, at once.
        if let Request::Tip = req {
            let data = answer_sync(&self.node, req).to_bytes();
            let _ = self.swarm.behaviour_mut().sync.send_response(channel, data);
            return;
        }
        // Reading blocks is disk work: off the event loop, a few at a time (the rest wait their
        // turn; the per-peer budget bounds how many wait).
        let permits = self.serving.clone();
        let node = self.node.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let resp = answer_sync(&node, req);
                let _ = tx.send(Internal::SyncRespond {
                    channel,
                    data: resp.to_bytes(),
                });
            })
            .await;
        });
    }

    /// A sync answer: decoded here when short, else on a blocking thread (a batch of blocks
    /// may be 16 MiB), which hands it back to the loop.
    pub(super) fn sync_answer(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        data: Vec<u8>,
    ) {
        if data.len() <= crate::node::workers::INLINE_JSON {
            return self.sync_response(peer, request_id, Response::decode(&data));
        }
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let _ = tx.send(Internal::SyncAnswer(
                peer,
                request_id,
                Response::decode(&data),
            ));
        });
    }

    pub(super) fn sync_response(
        &mut self,
        peer: PeerId,
        request_id: OutboundRequestId,
        decoded: Result<Response, DecodeError>,
    ) {
        match decoded {
            Err(e) => self.ban(peer, &format!("malformed sync response: {e}")),
            Ok(Response::Tip {
                height,
                cumulative_difficulty,
                ..
            }) => {
                self.tips.insert(peer, (height, cumulative_difficulty));
                let best = self.tips.values().map(|t| t.0).max().unwrap_or(0);
                self.stats().best_peer_height = best;
            }
            Ok(Response::ForkPoint { height, hash }) => {
                let Some(f) = self
                    .in_flight
                    .filter(|f| f.peer == peer && f.id == request_id && f.from.is_none())
                else {
                    return;
                };
                self.in_flight = None;
                // It must be one of ours: a block we have on our main chain.
                let ours = self
                    .node
                    .lock()
                    .chain
                    .store()
                    .hash_at(Height(height))
                    .ok()
                    .flatten();
                if ours != Some(sispop_chain::BlockHash(hash)) {
                    // Not one of ours (or our chain moved meanwhile): a strike, not a cursor.
                    let strikes = self.strikes.get(&peer).copied().unwrap_or(0) + 1;
                    if strikes >= MAX_SYNC_STRIKES {
                        self.ban(peer, "answered fork points that are not in our locator");
                    } else {
                        self.strikes.insert(peer, strikes);
                        self.tips.remove(&peer);
                    }
                    return;
                }
                debug!(%peer, height, since = ?f.at.elapsed(), "fork point found");
                self.cursor = Some((peer, height.saturating_add(1)));
                self.sync_from(peer);
            }
            Ok(Response::Blocks(blocks)) => {
                let Some(from) = self
                    .in_flight
                    .filter(|f| f.peer == peer && f.id == request_id)
                    .and_then(|f| f.from)
                else {
                    return;
                };
                if let Some(f) = self.in_flight.as_mut() {
                    f.applying = true;
                }
                let node = self.node.clone();
                let tx = self.tx.clone();
                tokio::task::spawn_blocking(move || {
                    let mut progressed = 0;
                    let mut handled = 0;
                    let mut ours = false;
                    let mut unknown_parent = false;
                    let mut ban = None;
                    let blobs: Vec<&[u8]> = blocks.iter().map(|b| b.blob.as_slice()).collect();
                    if let Err(e) = sync_policy::check_batch(from, &blobs) {
                        ban = Some(format!("served a batch other than asked for: {e}"));
                    }
                    for (i, b) in blocks.iter().enumerate().take_while(|_| ban.is_none()) {
                        match node.submit_block(&b.blob, &b.txs, false) {
                            Ok(AddOutcome::Changed { .. }) | Ok(AddOutcome::SideChain) => {
                                progressed += 1
                            }
                            Ok(AddOutcome::AlreadyKnown) => {}
                            Err(BlockError::UnknownParent(_)) if i == 0 => {
                                unknown_parent = true;
                                break;
                            }
                            Err(e) if e.is_peer_fault() => {
                                ban = Some(format!("sent an invalid block during sync: {e}"));
                                break;
                            }
                            Err(e) => {
                                debug!(error = %e, "synced block not applied");
                                ours = true;
                                break;
                            }
                        }
                        handled += 1;
                    }
                    // The cursor moves past what was handled (a block that failed for our own
                    // reasons is asked for again).
                    let served = if unknown_parent {
                        blocks.len()
                    } else {
                        handled
                    };
                    let _ = tx.send(Internal::Synced {
                        peer,
                        from,
                        progressed,
                        served,
                        unknown_parent,
                        ban,
                        ours,
                    });
                });
            }
            Ok(Response::Refused(reason)) => {
                // Genesis is in every locator: a peer with none of it is on another chain.
                if self
                    .in_flight
                    .is_some_and(|f| f.peer == peer && f.id == request_id)
                {
                    self.in_flight = None;
                    if reason == sync_policy::NO_COMMON_BLOCK {
                        self.ban(peer, "its chain does not build on our genesis");
                        return;
                    }
                }
                debug!(%peer, reason, "sync request refused");
            }
            Ok(Response::SnPong { .. }) => {}
            Ok(Response::Peers(addrs)) => self.peers_answered(addrs),
        }
    }

    /// Asks `peer` for the next batch after the cursor, or, without a cursor for it, for the
    /// fork point of our chains.
    pub(super) fn sync_from(&mut self, peer: PeerId) {
        let (req, from) = match self.cursor {
            Some((p, next)) if p == peer => (
                Request::Blocks {
                    from: next,
                    count: MAX_BLOCKS_PER_RESPONSE,
                },
                Some(next),
            ),
            _ => {
                let st = self.node.lock();
                let tip = st.chain.tip().0 .0;
                let hashes: Vec<[u8; 32]> = sync_policy::locator_heights(tip)
                    .into_iter()
                    .filter_map(|h| st.chain.store().hash_at(Height(h)).ok().flatten())
                    .map(|h| h.0)
                    .collect();
                (Request::Locator(hashes), None)
            }
        };
        let id = self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, req.to_bytes());
        self.in_flight = Some(InFlight {
            peer,
            id,
            at: Instant::now(),
            from,
            applying: false,
        });
    }

    /// A peer ahead of us to sync from (see [`sync_policy::choose_sync_peer`]).
    pub(super) fn choose_sync_peer(&self, cum: u128, avoid: Option<PeerId>) -> Option<PeerId> {
        let ahead: Vec<(PeerId, u32)> = self
            .connected
            .iter()
            .filter(|p| self.tips.get(*p).is_some_and(|t| t.1 > cum))
            .map(|p| (*p, self.strikes.get(p).copied().unwrap_or(0)))
            .collect();
        sync_policy::choose_sync_peer(&ahead, avoid, &mut rand::rngs::OsRng)
    }

    pub(super) fn sync_round(&mut self) {
        if let Some(f) = self
            .in_flight
            .filter(|f| !f.applying && f.at.elapsed() > Duration::from_secs(30))
        {
            // A peer that leaves a sync request unanswered is struck like one that serves
            // nothing, and its claim is forgotten until it answers a tip request again.
            self.in_flight = None;
            let strikes = self.strikes.get(&f.peer).copied().unwrap_or(0) + 1;
            if strikes >= MAX_SYNC_STRIKES {
                self.ban(f.peer, "left sync requests unanswered");
            } else {
                self.strikes.insert(f.peer, strikes);
                self.tips.remove(&f.peer);
                if self.cursor.is_some_and(|(p, _)| p == f.peer) {
                    self.cursor = None;
                }
            }
        }
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        {
            let best = self.tips.values().map(|t| t.0).max().unwrap_or(0);
            self.stats().best_peer_height = best;
        }
        if self.in_flight.is_none() {
            let cum = self.node.lock().chain.tip_meta().cumulative_difficulty;
            // Resume the cursor's peer if it is still ahead, else choose one.
            let resume = self
                .cursor
                .map(|(p, _)| p)
                .filter(|p| self.tips.get(p).is_some_and(|t| t.1 > cum));
            if let Some(p) = resume.or_else(|| self.choose_sync_peer(cum, None)) {
                if resume.is_none() {
                    self.run = 0;
                }
                self.sync_from(p);
            }
        }
        // Ask one random peer for its tip each round.
        if let Some(p) = peers.iter().choose(&mut rand::rngs::OsRng) {
            self.swarm
                .behaviour_mut()
                .sync
                .send_request(p, Request::Tip.to_bytes());
        }
    }
}
