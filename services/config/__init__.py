"""services/config"""
