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
             description="cross-modal clustering-guided negatives: persistent centroids of the cross-modal candidates, "
                         "2nd-nearest centroid as hard negative, BML on same-cluster pairs (paper)")
    register("in-batch", in_batch.build, options=in_batch.InBatchOptions, description="plain InfoNCE over the gathered batch")
    register("cluster-ns", cm_cgns.build, options=cm_cgns.ClusterNSOptions,
             description="clustering-guided negatives on the single-modal anchors (single-modal baseline)")


@hookimpl
def register_reconstruction_heads(register):
    from cmcgns.heads import cm_mir, mae_pixel

    register("cm-mir", cm_mir.build, options=cm_mir.CMMIROptions,
             description="feature-level masking, fused with f^{R->I}, transformer + conv decoder to the image, 10 x L1 (paper)")
    register("mae-pixel", mae_pixel.build, options=mae_pixel.MAEPixelOptions,
             description="pixel masking + second encoder pass, per-patch MLP decoder on masked patches (ablation)")


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
