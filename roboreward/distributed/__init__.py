"""Scale training out on Ray: envs in rollout actors, the reward model in one batched server actor.

Two switches move parts of a training job onto a Ray cluster; the rest of the job (the learner, its
checkpoints, ``--resume``) stays where it is:

- ``env.backend: ray`` — :class:`~roboreward.distributed.vec_env.RayVecEnv`, a SB3 ``VecEnv`` whose
  envs live in rollout actors (``ray.envs_per_actor`` envs each), placed by Ray wherever the cluster
  has CPUs. It behaves as ``SubprocVecEnv`` does (auto-reset, terminal observations, reset infos,
  seeding), and an actor that dies is restarted with its episodes ended as truncated.
- ``reward.server: ray`` — :class:`~roboreward.distributed.reward_server.RewardServer`, the reward
  model in one actor (on a GPU when the cluster has one) that scores frames from every rollout actor
  in calls of ``reward.batch_size``. With both switches the frames go from the rollout actors to the
  server through Ray's object store; the learner handles only references to them.

Which cluster: ``ray.address`` (``--ray-address``); none starts Ray on this machine, on 127.0.0.1 with
the dashboard off (:func:`~roboreward.distributed.cluster.connect`).
"""
