"""A labelled corpus of failed-job log snippets for testing the diagnosis rules.

Written for this handbook to resemble real PyTorch / NCCL / CUDA / Slurm failures (no AcmeTrace logs are public).
The rules and the corpus were written by the same hands, so the accuracy measured on it is an upper bound, not
an estimate of accuracy on unseen logs; the chapter says so.
"""
from repro.acme.diagnosis import FRAMEWORK, INFRASTRUCTURE, LOSS, SCRIPT

CORPUS: tuple[tuple[str, str, str], ...] = (  # (log, reason, class)
    ("[rank12]: RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1191, unhandled system error\n"
     "NCCL WARN NVLink 3 is down on GPU 5 (fatal)", "NVLinkError", INFRASTRUCTURE),
    ("kernel: NVRM: Xid (PCI:0000:8a:00): 74, pid=23121, NVLink: fatal error detected on link 2\n"
     "nvlink error: link 2 inactive", "NVLinkError", INFRASTRUCTURE),
    ("kernel: NVRM: Xid (PCI:0000:1b:00): 48, pid=9921, An uncorrectable double bit error (DBE) has been detected\n"
     "RuntimeError: CUDA error: uncorrectable ECC error encountered", "ECCError", INFRASTRUCTURE),
    ("dcgm: GPU 3 ECC error count exceeded threshold (DBE volatile = 1)", "ECCError", INFRASTRUCTURE),
    ("Traceback (most recent call last):\n  File \"train.py\", line 412, in <module>\n    loss.backward()\n"
     "RuntimeError: CUDA error: an illegal memory access was encountered\n"
     "CUDA kernel errors might be asynchronously reported at some other API call", "CUDAError", INFRASTRUCTURE),
    ("RuntimeError: CUDA error: unspecified launch failure\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side "
     "assertions.", "CUDAError", INFRASTRUCTURE),
    ("srun: error: Node failure on SH-IDC1-10-140-0-31\nslurmstepd: error: *** STEP 88123.0 ON SH-IDC1-10-140-0-31 "
     "CANCELLED AT 2023-07-11T02:11:43 DUE TO NODE_FAIL ***", "NodeFailure", INFRASTRUCTURE),
    ("kubelet: node kalos-gpu-217 is NotReady; evicting pods", "NodeFailure", INFRASTRUCTURE),
    ("[rank0]: RuntimeError: [gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:23741: Connection reset by peer\n"
     "E1126 elastic/multiprocessing/api.py:1002] failed (exitcode: -9) local_rank: 1 (pid: 20501)",
     "NodeFailure", INFRASTRUCTURE),
    ("[E ProcessGroupNCCL.cpp:828] [Rank 57] Watchdog caught collective operation timeout: "
     "WorkNCCL(SeqNum=120331, OpType=ALLREDUCE, Timeout(ms)=1800000) ran for 1800413 milliseconds before timing out.",
     "NCCLTimeout", INFRASTRUCTURE),
    ("torch.distributed.DistBackendError: [2] is setting up NCCL communicator and retrieving ncclUniqueId from [0] "
     "via c10d key-value store by key '0', but store->get('0') got error: NCCL Timeout", "NCCLTimeout", INFRASTRUCTURE),
    ("[rank0]: RuntimeError: [gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 6000ms for recv operation "
     "to complete", "NCCLTimeout", INFRASTRUCTURE),
    ("RuntimeError: NCCL communicator was aborted on rank 3. Original reason for failure was: ncclRemoteError: "
     "A call failed possibly due to a network error or a remote process exiting prematurely.", "NCCLRemote",
     INFRASTRUCTURE),
    ("NCCL WARN NET/IB : Got completion from peer 10.140.1.22<43322> with error 12, opcode 0, len 0, vendor err 129",
     "NetworkError", INFRASTRUCTURE),
    ("misc/ibvwrap.cc:284 NCCL WARN Call to ibv_modify_qp failed with error Connection timed out\n"
     "ibv_modify_qp failed", "NetworkError", INFRASTRUCTURE),
    ("botocore.exceptions.ReadTimeoutError: Read timeout on endpoint URL: \"http://10.140.2.254:80/model-ckpt/7B/"
     "step_3000/model_tp0_pp0.pt\"", "S3StorageError", INFRASTRUCTURE),
    ("petrel_client.common.exception.NoSuchBucket: bucket 'llm-data' does not exist", "S3StorageError",
     INFRASTRUCTURE),
    ("torch.distributed.DistNetworkError: Connection reset by peer\n"
     "  File \"/opt/conda/lib/python3.10/site-packages/torch/distributed/rendezvous.py\", line 176", "ConnectionError",
     INFRASTRUCTURE),
    ("ConnectionRefusedError: [Errno 111] Connection refused\nRuntimeError: TCPStore failed to connect to "
     "10.140.0.12:29500", "ConnectionError", INFRASTRUCTURE),
    ("step 41200 | lr 2.9e-04 | loss nan | grad_norm inf\nWARNING: loss is nan at step 41200, stopping",
     "LossAnomaly", LOSS),
    ("[monitor] loss spike detected: 2.31 -> 9.87 within 20 steps (z=14.2)", "LossAnomaly", LOSS),
    ("torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 79.35 GiB total capacity; "
     "75.12 GiB already allocated)", "OutOfMemory", FRAMEWORK),
    ("RuntimeError: DataLoader worker (pid 31210) is killed by signal: Killed.", "DataloaderKilled", FRAMEWORK),
    ("RuntimeError: Error(s) in loading state_dict for LlamaForCausalLM:\n\tsize mismatch for "
     "model.embed_tokens.weight: copying a param with shape torch.Size([103168, 4096]) from checkpoint, the shape in "
     "current model is torch.Size([92544, 4096]).", "ModelLoadingError", FRAMEWORK),
    ("Traceback (most recent call last):\n  File \"internlm/model/modeling_internlm.py\", line 301, in forward\n"
     "AttributeError: 'NoneType' object has no attribute 'dtype'", "AttributeError", FRAMEWORK),
    ("Traceback (most recent call last):\n  File \"internlm/core/scheduler/pipeline_scheduler.py\", line 88\n"
     "AssertionError: micro_num must be divisible by pipeline stages", "AssertionError", FRAMEWORK),
    ("Traceback (most recent call last):\n  File \"torch/nn/functional.py\", line 2210, in embedding\n"
     "RuntimeError: Expected all tensors to be on the same device, but found at least two devices, cuda:0 and cpu!",
     "RuntimeError", FRAMEWORK),
    ("ValueError: Attention mask should be of size (4, 1, 2048, 2048), but is (4, 1, 2048, 4096)", "ValueError",
     FRAMEWORK),
    ("Traceback (most recent call last):\n  File \"eval.py\", line 19, in <module>\n    main(cfg)\n"
     "TypeError: main() missing 1 required positional argument: 'tokenizer'", "TypeError", SCRIPT),
    ("Traceback (most recent call last):\n  File \"train.py\", line 55, in load_data\n"
     "FileNotFoundError: [Errno 2] No such file or directory: '/mnt/data/v3/train_shard_0042.bin'",
     "FileNotFoundError", SCRIPT),
    ("Traceback (most recent call last):\n  File \"configs/7B_sft.py\", line 3\n"
     "KeyError: 'num_attention_heads'", "KeyError", SCRIPT),
    ("Traceback (most recent call last):\n  File \"train.py\", line 2, in <module>\n"
     "ModuleNotFoundError: No module named 'flash_attn'", "ModuleNotFoundError", SCRIPT),
    ("OSError: [Errno 28] No space left on device: '/home/user/ckpt/step_100'", "OSError", SCRIPT),
    ("Traceback (most recent call last):\n  File \"tools/convert.py\", line 71\n"
     "NameError: name 'tokenizer_path' is not defined", "NameError", SCRIPT),
)
