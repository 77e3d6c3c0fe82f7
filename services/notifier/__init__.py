"""services/notifier"""
