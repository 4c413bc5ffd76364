# Gen-L Studio on a CUDA PyTorch base. Build:  docker build -t genl-studio .
# Run:  docker run --gpus all -p 7860:7860 -v genl-data:/data [-e GENL_AUTH=user:pass] genl-studio
# Models: mount a Hugging Face cache at /data/hf (or pass --models /data/models/my-sd15) to run offline.
# The base should carry the torch version pinned in requirements.txt, so pip keeps its CUDA build;
# pick another with --build-arg BASE_IMAGE=pytorch/pytorch:<torch>-cuda<cuda>-cudnn<cudnn>-runtime.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HOME=/data/hf

WORKDIR /app
COPY requirements.txt .
RUN python -m pip install --upgrade pip && python -m pip install -r requirements.txt \
    && python -m pip install --no-deps controlnet-aux==0.0.10
# (controlnet-aux: the OpenPose body network; its declared deps, timm and torchvision, are not used)

COPY genl ./genl
COPY ui ./ui
COPY assets ./assets
COPY app.py README.md ./

RUN useradd --create-home --uid 1000 studio && mkdir -p /data/outputs /data/hf && chown -R studio /data
USER studio
VOLUME ["/data"]
EXPOSE 7860
# 0.0.0.0 inside the container; publish the port (-p) to reach it. --auth or GENL_AUTH protects it.
CMD ["python", "app.py", "--host", "0.0.0.0", "--port", "7860", "--outputs", "/data/outputs"]
