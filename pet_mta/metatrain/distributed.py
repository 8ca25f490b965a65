"""Process group for data-parallel training: NCCL on GPUs, gloo on CPUs.

metatrain launches distributed runs through SLURM (one ``mtt train`` per task);
``SLURM_*`` variables are turned into the usual ``MASTER_ADDR``/``RANK``/...
variables by metatrain's ``DistributedEnvironment``.
"""

from typing import List, Tuple

import torch
import torch.distributed
from metatrain.utils.distributed.slurm import DistributedEnvironment


def init_process_group(
    port: int, devices: List[torch.device]
) -> Tuple[torch.device, int, int]:
    """Join the process group of this SLURM task.

    :param devices: the devices metatrain picked; CUDA -> one GPU per local rank
        with NCCL, otherwise CPU with gloo
    :return: this process's device, the world size and this process's rank
    """
    if len(devices) > 1:
        raise ValueError(
            "distributed training uses one device per process: set `device` to "
            "`cuda` or `cpu`, not `multi-cuda`"
        )
    environment = DistributedEnvironment(port)
    if devices[0].type == "cuda":
        device = torch.device(
            "cuda", environment.local_rank % torch.cuda.device_count()
        )
        torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend="nccl", device_id=device)
    else:
        device = torch.device("cpu")
        torch.distributed.init_process_group(backend="gloo")
    return device, torch.distributed.get_world_size(), torch.distributed.get_rank()
