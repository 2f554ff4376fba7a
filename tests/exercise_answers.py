"""Reference answers to the lessons' "your turn" exercises, kept out of the lessons.

test_lessons runs each lesson once with these sources in place of the exercise
cells (keyed by lesson and cell id) and checks that the self-check says "Done".
"""

ANSWERS = {
    "01-devices": """small = torch.randn(128, 128)
my_threads = bench.mark(min_run_time=pick(0.1, 1.0), memory=False,
                        num_threads={"128: 1 thread": 1, "128: all threads": cores},
                        **{"128: 1 thread": lambda: small @ small, "128: all threads": lambda: small @ small})""",
    "02-data-loading": """dataset = variants["tensor_batched"]
my_batches = bench.mark(min_run_time=MIN_RUN_TIME, num_threads=1, memory=False,
                        **{"batch 16": loading.epoch(dataset, 16), "batch 256": loading.epoch(dataset, 256)})""",
    "03-optimizers": """deep = MLP(60, 2, hidden=(32,) * 8)
loss_fn(deep(X), y).backward()
deep_optimizers = {name: make_adamw(deep.parameters(), name) for name in ("forloop", "fused")}
for optimizer in deep_optimizers.values():
    optimizer.step()
my_steps = bench.mark(min_run_time=pick(0.2, 1.0), num_threads=1, memory=False,
                      **{name: optimizer.step for name, optimizer in deep_optimizers.items()})""",
    "04-jit": """traced_chain = jit.trace(activation_chain, v)
my_chain = bench.mark(min_run_time=pick(0.3, 1.0), num_threads=1, memory=False,
                      eager=lambda: activation_chain(v), traced=lambda: traced_chain(v))""",
    "05-mixed-precision": """square = torch.randn(256, 256)


def bf16_product():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return square @ square


my_precision = bench.mark(min_run_time=pick(0.2, 1.0), num_threads=THREADS, memory=False,
                          float32=lambda: square @ square, bfloat16=bf16_product)""",
    "06-validation": """my_eval = bench.mark(min_run_time=pick(0.5, 2.0), num_threads=1, memory=False,
                     **{f"eval_freq {k}": lambda k=k: sonar_learner(epochs=50, eval_freq=k).fit(X, y)
                        for k in (1, 10)})""",
    "07-batchnorm-dropout": """batch = X_train[:64]
to_time = {name: CNN(in_channels=channels, num_classes=len(data.classes), image_size=side, **VARIANTS[name])
           for name in ("plain", "batch norm")}
my_cost = bench.mark(min_run_time=pick(0.2, 1.0), num_threads=1, memory=False,
                     **{name: lambda net=net: net(batch).sum().backward() for name, net in to_time.items()})""",
    "08-transfer": """def training_step(model):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    images, labels = train[0][:16], train[1][:16]

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return step


full_model = transfer.backbone(name, num_classes=num_classes).model
frozen_model = transfer.freeze_backbone(transfer.backbone(name, num_classes=num_classes).model)
with devices.threads(THREADS):
    my_freeze = bench.mark(min_run_time=pick(0.3, 1.0), memory=False,
                           **{"all layers train": training_step(full_model),
                              "backbone frozen": training_step(frozen_model)})""",
    "09-augmentation": """few = (train[0][:1000], train[1][:1000])
my_scores = {}
for label, transform in {"none": None, "rotation": v2.RandomRotation(15)}.items():
    with devices.threads(THREADS), devices.seeded(0):
        train_loader, valid_loader = augment.loaders(few, valid, transform)
        model = augment.small_cnn()
        my_scores[label] = augment.train_and_validate(model, train_loader, valid_loader, epochs=1)""",
    "10-profiling": """accumulate_16 = profiling.make_step(deep, deep_optimizer, micro_batches=16)
my_accumulation = bench.mark(min_run_time=RUN_TIME, num_threads=1, memory=False,
                             **{"plain": lambda: variants["plain"](X_big, y_big),
                                "accumulate 16": lambda: accumulate_16(X_big, y_big)})""",
    "11-data-parallel": """my_rank_step = bench.mark(
    min_run_time=pick(0.2, 1.0), num_threads=1, memory=False,
    **{"global batch 64": lambda: train.train_step(rank_model, rank_optimizer, X_global, y_global),
       "rank batch 32": lambda: train.train_step(rank_model, rank_optimizer, X_global[:32], y_global[:32])})""",
}
