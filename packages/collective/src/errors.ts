/**
 * A collective or the rendezvous failed: a peer died or vanished, an operation ran past its deadline,
 * ranks disagreed about an operation (size, type, order), or a process was refused. After one, the
 * group is unusable: every pending and later operation rejects with it.
 */
export class CollectiveError extends Error {
  /** Ranks that were lost (died, vanished, closed early), when that is the cause. */
  readonly lostRanks: readonly number[];

  constructor(message: string, lostRanks: readonly number[] = []) {
    super(message);
    this.name = 'CollectiveError';
    this.lostRanks = lostRanks;
  }
}
