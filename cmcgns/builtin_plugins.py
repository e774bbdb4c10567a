"""Built-in components, registered through the very same hooks third-party plugins use."""

from __future__ import annotations

from cmcgns.plugins.hookspecs import hookimpl


@hookimpl
def register_datasets(register):
    from cmcgns.data.preprocess.registry import register_builtin_datasets

    register_builtin_datasets(register)


@hookimpl
def register_negative_samplers(register):
    from cmcgns.samplers import cm_cgns, in_batch

    register("cm-cgns", cm_cgns.build, options=cm_cgns.CMCGNSOptions,
             description="cross-modal k-means clusters: false-negative masking + nearest-cluster hard negatives")
    register("in-batch", in_batch.build, options=in_batch.InBatchOptions, description="plain symmetric InfoNCE")
    register("cluster-ns", cm_cgns.build_text_only, options=cm_cgns.ClusterNSOptions,
             description="text-only clustering-guided negative sampling (single-modal baseline)")


@hookimpl
def register_reconstruction_heads(register):
    from cmcgns.heads import cm_mir

    register("cm-mir", cm_mir.build, options=cm_mir.CMMIROptions, description="masked patches reconstructed from text-attended features")
    register("none", cm_mir.build_none, description="no reconstruction")


@hookimpl
def register_downstream_tasks(register):
    from cmcgns.downstream import classification as cls
    from cmcgns.downstream import dense

    def classification(name: str, dataset: str, description: str):
        register(name, lambda options: cls.ClassificationTask(name, dataset, options), options=cls.ClassificationOptions,
                 description=description)

    classification("chexpert-cls", "chexpert", "CheXpert 5-label classification (AUROC)")
    classification("rsna-cls", "rsna", "RSNA pneumonia classification (AUROC)")
    classification("covidx-cls", "covidx", "COVIDx positive/negative (ACC, AUROC)")
    register("rsna-det", lambda options: dense.DetectionTask("rsna-det", "rsna", options), options=dense.DenseOptions,
             description="RSNA opacity detection, RetinaNet via MMDetection (mAP)")
    register("objectcxr-det", lambda options: dense.DetectionTask("objectcxr-det", "object-cxr", options), options=dense.DenseOptions,
             description="Object-CXR foreign objects, RetinaNet via MMDetection (mAP)")
    register("siim-seg", lambda options: dense.SegmentationTask("siim-seg", "siim", options), options=dense.SegmentationOptions,
             description="SIIM pneumothorax segmentation, FCN via MMSegmentation (Dice)")
    register("rsna-seg", lambda options: dense.SegmentationTask("rsna-seg", "rsna", options), options=dense.SegmentationOptions,
             description="RSNA opacity box-mask segmentation via MMSegmentation (Dice)")
