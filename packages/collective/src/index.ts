export {
  DEFAULT_MASTER_PORT,
  expandSlurmNodeList,
  type Launcher,
  type LaunchInfo,
  launchInfoFromEnv,
  slurmPort,
} from './env.js';
export { CollectiveError } from './errors.js';
export {
  allReduceAlgorithm,
  type Collectable,
  chunkRanges,
  ProcessGroup,
  type ProcessGroupOptions,
  type ReduceOp,
  SLICE_BYTES,
  SMALL_ALLREDUCE_BYTES,
} from './process-group.js';
export { freePort } from './rendezvous.js';
