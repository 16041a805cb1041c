"""Built-in weight-sharing supernets (OFA MobileNetV3, elastic ResNet, elastic Transformer), each a plugin module.

Each plugin module registers one :class:`hwnas.model.supernet.Supernet` and imports
torch only when a network is built; the torch modules live beside it.
"""
