import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { CollectiveError, expandSlurmNodeList, launchInfoFromEnv, slurmPort } from '../src/index.js';

describe('launchInfoFromEnv: rank, world and master from the launcher that started the process', () => {
  it('torchrun / segtrain launch', () => {
    const info = launchInfoFromEnv({
      RANK: '3',
      WORLD_SIZE: '8',
      LOCAL_RANK: '1',
      MASTER_ADDR: 'n0',
      MASTER_PORT: '29501',
    });
    assert.deepEqual(info, {
      rank: 3,
      worldSize: 8,
      master: 'n0:29501',
      localRank: 1,
      launcher: 'torchrun',
      source: 'RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT',
    });
    assert.equal(launchInfoFromEnv({ RANK: '0', WORLD_SIZE: '1', MASTER_ADDR: 'h' })?.master, 'h:29500');
  });

  it('Paddle: the master is the first trainer endpoint', () => {
    const info = launchInfoFromEnv({
      PADDLE_TRAINER_ID: '2',
      PADDLE_TRAINERS_NUM: '4',
      PADDLE_TRAINER_ENDPOINTS: '10.0.0.1:6170,10.0.0.1:6171,10.0.0.2:6170,10.0.0.2:6171',
    });
    assert.deepEqual(
      [info?.launcher, info?.rank, info?.worldSize, info?.master],
      ['paddle', 2, 4, '10.0.0.1:6170'],
    );
  });

  it('Open MPI: ranks from OMPI_COMM_WORLD_*, master from MASTER_ADDR/MASTER_PORT', () => {
    const info = launchInfoFromEnv({
      OMPI_COMM_WORLD_RANK: '5',
      OMPI_COMM_WORLD_SIZE: '6',
      OMPI_COMM_WORLD_LOCAL_RANK: '2',
      MASTER_ADDR: 'head',
      MASTER_PORT: '1234',
    });
    assert.deepEqual(
      [info?.launcher, info?.rank, info?.worldSize, info?.localRank, info?.master],
      ['openmpi', 5, 6, 2, 'head:1234'],
    );
    assert.throws(
      () => launchInfoFromEnv({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' }),
      (e: unknown) => e instanceof CollectiveError && e.message.includes('MASTER_ADDR is not'),
    );
  });

  it('Slurm: the master is the first host of the expanded node list, the port from the job id', () => {
    const info = launchInfoFromEnv({
      SLURM_PROCID: '7',
      SLURM_NTASKS: '16',
      SLURM_LOCALID: '3',
      SLURM_JOB_NODELIST: 'gpu[08-10,12],cpu1',
      SLURM_JOB_ID: '4242',
    });
    assert.deepEqual([info?.launcher, info?.rank, info?.worldSize, info?.localRank], ['slurm', 7, 16, 3]);
    assert.equal(info?.master, `gpu08:${slurmPort('4242')}`);
    assert.equal(slurmPort('4242'), 24242);
    assert.equal(
      launchInfoFromEnv({ SLURM_PROCID: '0', SLURM_NTASKS: '1', SLURM_JOB_NODELIST: 'a', MASTER_PORT: '9' })
        ?.master,
      'a:9',
    );
  });

  it('the first launcher whose variables are set wins; none set is null; bad values name the variable', () => {
    assert.equal(
      launchInfoFromEnv({
        RANK: '1',
        WORLD_SIZE: '2',
        MASTER_ADDR: 'x',
        SLURM_PROCID: '0',
        SLURM_NTASKS: '9',
      })?.launcher,
      'torchrun',
    );
    assert.equal(launchInfoFromEnv({}), null);
    assert.throws(
      () => launchInfoFromEnv({ RANK: 'one', WORLD_SIZE: '2', MASTER_ADDR: 'x' }),
      /environment: RANK="one" is not an integer ≥ 0/,
    );
  });
});

describe("Slurm's node-list syntax", () => {
  it('expands ranges (keeping zero padding), lists inside brackets and several groups', () => {
    assert.deepEqual(expandSlurmNodeList('node[01-03,07]'), ['node01', 'node02', 'node03', 'node07']);
    assert.deepEqual(expandSlurmNodeList('a,b[1-2],c'), ['a', 'b1', 'b2', 'c']);
    assert.deepEqual(expandSlurmNodeList('gpu[8-10]'), ['gpu8', 'gpu9', 'gpu10']);
    assert.deepEqual(expandSlurmNodeList('rack[1-2]-n[1-2]'), [
      'rack1-n1',
      'rack1-n2',
      'rack2-n1',
      'rack2-n2',
    ]);
    assert.deepEqual(expandSlurmNodeList('single'), ['single']);
    assert.throws(() => expandSlurmNodeList('n[a-b]'), /range 'a-b'/);
  });
});
