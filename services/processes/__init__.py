"""services/processes"""
